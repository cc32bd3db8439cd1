"""A stand-in for ``pynvml`` that answers from a machine description, for tests without a GPU.

`FakeNvml(machine)` implements the pynvml functions this project calls, and nothing of the
project: the code under test runs for real against it (``with nvml.use_nvml(FakeNvml(...))``).
It reproduces how nvidia-ml-py 13 behaves on a real driver:

- constants and exceptions are the real binding's: errors are raised as ``pynvml.NVMLError(code)``,
  which builds the matching subclass (``NVMLError_NotSupported`` ...);
- every call before ``nvmlInit`` (or after the last ``nvmlShutdown``) raises Uninitialized;
  ``nvmlInit`` can fail as a machine without a driver, with an unloaded driver, or with a
  driver/library mismatch (`failing`);
- structs are the binding's ctypes structs (``nvmlPciInfo_t``, ``c_nvmlMemory_t``); with
  ``legacy_bytes=True`` strings and struct strings come back as ``bytes``, as older bindings
  (nvidia-ml-py3) returned them;
- ``NVML_P2P_CAPS_INDEX_READ`` is the binding's 1-tuple ``(0,)``, and passing it to
  ``nvmlDeviceGetP2PStatus`` raises ``ctypes.ArgumentError`` as ctypes does;
- NVLink queries past a GPU's last link raise InvalidArgument; on a GPU without NVLink they
  raise NotSupported;
- a field a GPU lacks raises NotSupported (``{"nvml_error": "NOT_SUPPORTED"}`` in the machine
  description; any NVML_ERROR_<NAME> works the same way).

Machines are JSON files in ``algoperf/hardware/machines/`` (`load_machine`): an 8x V100 DGX-1
with its NVLink hybrid cube-mesh, a 4x A100 SXM node and a 1x H100 PCIe workstation, modelled on
those systems' nvidia-smi output and NVIDIA's specifications. Tests change a copy of the
description (a lowered power limit, MIG on, ...) or the live state (`set_state`, for throttling
during a run).
"""

from __future__ import annotations

import copy
import ctypes
import json
import threading
from importlib import resources
from typing import Any

import pynvml

from algoperf.hardware.readings import Reading

MACHINES = {"dgx1_v100x8": "8x Tesla V100-SXM2-16GB, NVLink hybrid cube-mesh (DGX-1)",
            "hgx_a100x4": "4x A100-SXM4-40GB, NVLink all-to-all (HGX A100 4-GPU)",
            "h100x1": "1x H100 PCIe, no NVLink"}


def load_machine(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded machine description (see MACHINES)."""
    if name not in MACHINES:
        raise ValueError(f"unknown machine {name!r}; recorded: {', '.join(MACHINES)}")
    folder = resources.files("algoperf.hardware").joinpath("machines")
    return json.loads(folder.joinpath(f"{name}.json").read_text())


def recorded_host(machine: dict[str, Any]) -> dict[str, Reading]:
    """The host fields recorded with ``machine``, for fingerprints of the whole machine."""
    return {k: Reading.from_json(v) for k, v in machine["host"].items()}


class FakeHandle:
    """An opaque device handle, like pynvml's ``c_nvmlDevice_t``."""

    def __init__(self, owner: FakeNvml, index: int) -> None:
        self._owner, self.index = owner, index

    def __repr__(self) -> str:
        return f"<FakeHandle {self.index}>"


class _LegacyPciInfo(ctypes.Structure):
    """nvmlPciInfo_t without the binding's bytes-to-str conversion, as older bindings had."""

    _fields_ = pynvml.nvmlPciInfo_t._fields_


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and \
                "nvml_error" not in value:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _binding_constants() -> dict[str, Any]:
    prefixes = ("NVML_", "NVMLError", "nvmlClocksEventReason", "nvmlClocksThrottleReason")
    return {k: v for k, v in vars(pynvml).items() if k.startswith(prefixes)}


class FakeNvml:
    """The pynvml API over a machine description; see the module docstring."""

    def __init__(self, machine: dict[str, Any], legacy_bytes: bool = False,
                 missing_functions: tuple[str, ...] = ()) -> None:
        self.__dict__.update(_binding_constants())
        self.machine = machine
        self.legacy_bytes = legacy_bytes
        self._missing = frozenset(missing_functions)
        self._gpus = [_merge(machine.get("gpu_defaults", {}), g) for g in machine["gpus"]]
        self._index_by_bus = {_norm(g["bus_id"]): i for i, g in enumerate(self._gpus)}
        self._lock = threading.Lock()
        self._refcount = 0
        self.init_calls = 0

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "_missing"):
            raise AttributeError(f"module 'pynvml' has no attribute '{name}'")
        return object.__getattribute__(self, name)

    @classmethod
    def failing(cls, error: str) -> FakeNvml:
        """A machine whose ``nvmlInit`` raises NVML_ERROR_<error>: LIBRARY_NOT_FOUND (no
        driver), DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH, NO_PERMISSION, ..."""
        return cls({"init_error": error, "gpus": []})

    # -- live state, for tests that change the machine while it runs ---------------------------
    def set_state(self, index: int, **values: Any) -> None:
        """Sets ``clock_event_reasons``, ``temperature``, ``power_usage`` (mW) or the current
        ``sm_clock`` / ``mem_clock`` (MHz) of GPU ``index``."""
        gpu = self._gpus[index]
        paths = {"clock_event_reasons": ("clock_event_reasons",), "temperature": ("temperature",),
                 "power_usage": ("power", "usage"), "sm_clock": ("clocks", "current", "sm"),
                 "mem_clock": ("clocks", "current", "mem")}
        with self._lock:
            for key, value in values.items():
                *parents, leaf = paths[key]
                node = gpu
                for p in parents:
                    node = node[p]
                node[leaf] = value

    # -- plumbing -------------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self._refcount == 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Any) -> dict[str, Any]:
        self._check_init()
        if not isinstance(handle, FakeHandle) or handle._owner is not self:
            raise ctypes.ArgumentError("argument 1: TypeError: wrong type")
        return self._gpus[handle.index]

    def _value(self, gpu: dict[str, Any], *path: str) -> Any:
        node: Any = gpu
        with self._lock:
            for key in path:
                node = _raise_if_error(node)[key]
            return copy.deepcopy(_raise_if_error(node))

    def _str(self, text: str) -> str | bytes:
        return text.encode() if self.legacy_bytes else text

    def _pci(self, bus_id: str, device_id: str = "0x0", subsystem_id: str = "0x0") -> Any:
        info = (_LegacyPciInfo if self.legacy_bytes else pynvml.nvmlPciInfo_t)()
        domain, bus, rest = bus_id.split(":")
        device = rest.split(".")[0]
        info.domain, info.bus, info.device = int(domain, 16), int(bus, 16), int(device, 16)
        info.pciDeviceId, info.pciSubSystemId = int(device_id, 16), int(subsystem_id, 16)
        info.busId = bus_id.encode()
        info.busIdLegacy = f"{int(domain, 16):04X}:{bus}:{rest}".encode()
        return info

    # -- init -----------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        error = self.machine.get("init_error")
        if error:
            raise pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{error}"))
        with self._lock:
            self._refcount += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        with self._lock:
            self._refcount -= 1

    # -- system ---------------------------------------------------------------------------------
    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._check_init()
        return self._str(self.machine["driver_version"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check_init()
        return self.machine["cuda_driver_version"]

    def nvmlSystemGetNVMLVersion(self) -> str | bytes:
        self._check_init()
        return self._str(self.machine["nvml_version"])

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check_init()
        if not isinstance(index, int) or not 0 <= index < len(self._gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(self, index)

    # -- identity -------------------------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._str(self._value(self._gpu(handle), "name"))

    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes:
        return self._str(self._value(self._gpu(handle), "uuid"))

    def nvmlDeviceGetSerial(self, handle: Any) -> str | bytes:
        return self._str(self._value(self._gpu(handle), "serial"))

    def nvmlDeviceGetVbiosVersion(self, handle: Any) -> str | bytes:
        return self._str(self._value(self._gpu(handle), "vbios_version"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        major, minor = self._value(self._gpu(handle), "compute_capability")
        return (major, minor)

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        gpu = self._gpu(handle)
        total, used = self._value(gpu, "memory", "total"), self._value(gpu, "memory", "used")
        memory = pynvml.c_nvmlMemory_t()
        memory.total, memory.used, memory.free = total, used, total - used
        return memory

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        gpu = self._gpu(handle)
        return self._pci(self._value(gpu, "bus_id"), self._value(gpu, "pci", "device_id"),
                         self._value(gpu, "pci", "subsystem_id"))

    # -- PCIe -----------------------------------------------------------------------------------
    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "pcie", "gen_current")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "pcie", "gen_max")

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "pcie", "width_current")

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "pcie", "width_max")

    # -- power ----------------------------------------------------------------------------------
    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "power", "limit")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "power", "enforced_limit")

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "power", "default_limit")

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        return list(self._value(self._gpu(handle), "power", "constraints"))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "power", "usage")

    # -- clocks ---------------------------------------------------------------------------------
    def _clock(self, handle: Any, kind: str, clock_type: Any) -> int:
        gpu = self._gpu(handle)
        names = {pynvml.NVML_CLOCK_SM: "sm", pynvml.NVML_CLOCK_MEM: "mem"}
        if not isinstance(clock_type, int):
            raise ctypes.ArgumentError("argument 2: TypeError: wrong type")
        if clock_type not in names:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._value(gpu, "clocks", kind, names[clock_type])

    def nvmlDeviceGetApplicationsClock(self, handle: Any, clock_type: int) -> int:
        return self._clock(handle, "applications", clock_type)

    def nvmlDeviceGetDefaultApplicationsClock(self, handle: Any, clock_type: int) -> int:
        return self._clock(handle, "default_applications", clock_type)

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        return self._clock(handle, "max", clock_type)

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        return self._clock(handle, "current", clock_type)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "clock_event_reasons")

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    # -- modes ----------------------------------------------------------------------------------
    def nvmlDeviceGetEccMode(self, handle: Any) -> list[int]:
        return list(self._value(self._gpu(handle), "ecc"))

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        return list(self._value(self._gpu(handle), "mig"))

    def nvmlDeviceGetComputeMode(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "compute_mode")

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        return self._value(self._gpu(handle), "persistence_mode")

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        gpu = self._gpu(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._value(gpu, "temperature")

    # -- NVLink ---------------------------------------------------------------------------------
    def _link(self, handle: Any, link: Any) -> dict[str, Any]:
        gpu = self._gpu(handle)
        if not isinstance(link, int):
            raise ctypes.ArgumentError("argument 2: TypeError: Don't know how to convert "
                                       "parameter 2")
        count = self._value(gpu, "nvlink_count")  # raises NotSupported without NVLink
        if not 0 <= link < count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu

    def nvmlDeviceGetNvLinkState(self, handle: Any, link: int) -> int:
        gpu = self._link(handle, link)
        remotes = gpu.get("nvlink_remote", [])
        return pynvml.NVML_FEATURE_ENABLED if link < len(remotes) and remotes[link] else \
            pynvml.NVML_FEATURE_DISABLED

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: Any, link: int) -> Any:
        gpu = self._link(handle, link)
        remotes = gpu.get("nvlink_remote", [])
        if link >= len(remotes) or not remotes[link]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        remote = self._index_by_bus.get(_norm(remotes[link]))
        device_id = self._gpus[remote]["pci"]["device_id"] if remote is not None else "0x0"
        return self._pci(remotes[link], device_id)

    def nvmlDeviceGetNvLinkVersion(self, handle: Any, link: int) -> int:
        return self._value(self._link(handle, link), "nvlink_version")

    # -- topology -------------------------------------------------------------------------------
    def _pair(self, name: str, first: Any, second: Any) -> int:
        i, j = self._gpu(first), self._gpu(second)
        a, b = self._gpus.index(i), self._gpus.index(j)
        if a == b:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._value(self.machine["topology"], name, a, b)

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Any, device2: Any) -> int:
        return self._pair("common_ancestor", device1, device2)

    def nvmlDeviceGetP2PStatus(self, device1: Any, device2: Any, p2p_index: Any) -> int:
        if not isinstance(p2p_index, int):
            raise ctypes.ArgumentError("argument 3: TypeError: Don't know how to convert "
                                       "parameter 3")
        if p2p_index != 0:  # only the read capability is recorded
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._pair("p2p_read", device1, device2)


def _raise_if_error(node: Any) -> Any:
    if isinstance(node, dict) and "nvml_error" in node:
        raise pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{node['nvml_error']}"))
    return node


def _norm(bus_id: str) -> str:
    domain, bus, rest = bus_id.lower().split(":")
    return f"{int(domain, 16):04x}:{bus}:{rest}"
