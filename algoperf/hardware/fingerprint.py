"""The machine's fingerprint: NVML's view of the GPUs plus the host, and its digest.

Fields are addressed by flat names: ``system.<f>`` (driver level), ``gpu.<i>.<f>``,
``topology.<f>`` and ``host.<f>``. Each field has a kind: *config* fields describe the
configuration and go into the digest; *identity* fields name this particular board or host
(UUIDs, serials, bus ids, hostname) and *state* fields change while it runs (current clocks,
temperature, clock-event reasons); neither of those is digested, so two identically configured
machines share a digest and one machine keeps it from run to run.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from algoperf.hardware import gpus as gpu_reader
from algoperf.hardware import nvml as nvml_api
from algoperf.hardware.host import read_host, visible_gpus
from algoperf.hardware.readings import Reading

SCHEMA = 1
CONFIG, IDENTITY, STATE = "config", "identity", "state"

SYSTEM_FIELDS = {"driver_version": CONFIG, "cuda_driver_version": CONFIG,
                 "nvml_version": CONFIG, "gpu_count": CONFIG}
GPU_FIELDS = {
    "name": CONFIG, "uuid": IDENTITY, "serial": IDENTITY, "vbios_version": CONFIG,
    "compute_capability": CONFIG, "memory_total_bytes": CONFIG, "pci_bus_id": IDENTITY,
    "pci_device_id": CONFIG,
    # A link at rest drops to a lower generation to save power: the current generation is
    # state, while a narrower current width means a degraded link.
    "pcie_gen_current": STATE, "pcie_gen_max": CONFIG, "pcie_width_current": CONFIG,
    "pcie_width_max": CONFIG,
    "power_limit_mw": CONFIG, "power_enforced_limit_mw": CONFIG,
    "power_default_limit_mw": CONFIG, "power_limit_range_mw": CONFIG,
    "clock_sm_applications_mhz": CONFIG, "clock_mem_applications_mhz": CONFIG,
    "clock_sm_default_applications_mhz": CONFIG, "clock_mem_default_applications_mhz": CONFIG,
    "clock_sm_max_mhz": CONFIG, "clock_mem_max_mhz": CONFIG,
    "clock_sm_current_mhz": STATE, "clock_mem_current_mhz": STATE,
    "ecc_mode_current": CONFIG, "ecc_mode_pending": CONFIG,
    "mig_mode_current": CONFIG, "mig_mode_pending": CONFIG,
    "compute_mode": CONFIG, "persistence_mode": CONFIG,
    "clock_event_reasons": STATE, "temperature_c": STATE, "power_usage_mw": STATE,
    "nvlink_remote_bus_ids": IDENTITY, "nvlink_active_links": CONFIG, "nvlink_version": CONFIG,
}
TOPOLOGY_FIELDS = {"pcie_common_ancestor": CONFIG, "p2p_read": CONFIG, "nvlink": CONFIG}
HOST_FIELDS = {
    "hostname": IDENTITY, "cpu_model": CONFIG, "cpu_cores": CONFIG, "cpu_threads": CONFIG,
    "cpu_usable": CONFIG, "memory_total_bytes": CONFIG, "architecture": CONFIG, "os": CONFIG,
    "kernel": CONFIG, "container_runtime": CONFIG, "python_version": CONFIG,
    "cuda_visible_devices": CONFIG, "nvidia_visible_devices": CONFIG,
    "visible_gpu_count": CONFIG, "jax_version": CONFIG, "jaxlib_version": CONFIG,
    "flax_version": CONFIG, "optax_version": CONFIG, "torch_version": CONFIG,
    "numpy_version": CONFIG, "nvidia_ml_py_version": CONFIG,
}
SECTIONS = {"system": SYSTEM_FIELDS, "gpu": GPU_FIELDS, "topology": TOPOLOGY_FIELDS,
            "host": HOST_FIELDS}


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """One reading of the machine. ``nvml_problem`` is None when NVML worked, else
    ``(kind, message)`` from `nvml.NvmlUnavailable`."""

    system: dict[str, Reading]
    gpus: list[dict[str, Reading]]
    topology: dict[str, Reading]
    host: dict[str, Reading]
    nvml_problem: tuple[str, str] | None = None
    taken_at: str = ""

    def fields(self) -> dict[str, Reading]:
        """Every field by flat name (``gpu.3.power_limit_mw``)."""
        flat = {f"system.{k}": v for k, v in self.system.items()}
        for i, gpu in enumerate(self.gpus):
            flat.update({f"gpu.{i}.{k}": v for k, v in gpu.items()})
        flat.update({f"topology.{k}": v for k, v in self.topology.items()})
        flat.update({f"host.{k}": v for k, v in self.host.items()})
        return flat

    def digest(self) -> str:
        """sha256 over the config fields in canonical JSON (sorted keys, no error texts)."""
        config = {name: r.canonical() for name, r in self.fields().items()
                  if field_kind(name) == CONFIG}
        payload = {"schema": SCHEMA, "nvml": self.nvml_problem[0] if self.nvml_problem else "ok",
                   "fields": config}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        def section(d: Mapping[str, Reading]) -> dict[str, Any]:
            return {k: r.to_json() for k, r in d.items()}

        nvml = ({"available": True} if self.nvml_problem is None else
                {"available": False, "kind": self.nvml_problem[0],
                 "message": self.nvml_problem[1]})
        return {"schema": SCHEMA, "taken_at": self.taken_at, "digest": self.digest(),
                "nvml": nvml, "system": section(self.system),
                "gpus": [section(g) for g in self.gpus], "topology": section(self.topology),
                "host": section(self.host)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        def section(d: Mapping[str, Any]) -> dict[str, Reading]:
            return {k: Reading.from_json(v) for k, v in d.items()}

        nvml = data.get("nvml", {})
        problem = None if nvml.get("available", True) else (nvml["kind"], nvml["message"])
        return cls(system=section(data["system"]), gpus=[section(g) for g in data["gpus"]],
                   topology=section(data["topology"]), host=section(data["host"]),
                   nvml_problem=problem, taken_at=data.get("taken_at", ""))


def field_kind(name: str) -> str:
    """CONFIG, IDENTITY or STATE for a flat field name (unknown names count as state)."""
    section, _, rest = name.partition(".")
    if section == "gpu":
        rest = rest.partition(".")[2]
    return SECTIONS.get(section, {}).get(rest, STATE)


def take_fingerprint(host: Mapping[str, Reading] | None = None,
                     environ: Mapping[str, str] | None = None) -> Fingerprint:
    """Reads NVML (the injected module if `nvml.use_nvml` is active) and the host.

    ``host`` replaces the host reading (recorded host data in tests and replays); ``environ``
    replaces os.environ for the visible-device variables.
    """
    taken_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    host = dict(read_host(environ) if host is None else host)
    try:
        with nvml_api.session() as nvml:
            system = gpu_reader.read_system(nvml)
            count = system["gpu_count"].value if system["gpu_count"].ok else 0
            handles = [nvml.call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
            gpus = [gpu_reader.read_gpu(nvml, h) for h in handles]
            topology = gpu_reader.read_topology(nvml, handles, gpus)
    except nvml_api.NvmlUnavailable as e:
        problem = (e.kind, str(e))
        unavailable = Reading.error(f"NVML unavailable ({e.kind})")
        system = {k: unavailable for k in SYSTEM_FIELDS}
        topology = {k: unavailable for k in TOPOLOGY_FIELDS}
        host["visible_gpu_count"] = _visible_without_nvml(e.kind)
        return Fingerprint(system, [], topology, host, problem, taken_at)
    problem = None
    if not gpus:
        problem = (nvml_api.NO_GPU, nvml_api.MESSAGES[nvml_api.NO_GPU])
    uuids = [g["uuid"].value if g["uuid"].ok else "" for g in gpus]
    visible = visible_gpus(host["cuda_visible_devices"].value, uuids)
    host["visible_gpu_count"] = (Reading.of(len(visible)) if visible is not None else
                                 Reading.error("CUDA_VISIBLE_DEVICES names MIG instances"))
    return Fingerprint(system, gpus, topology, host, problem, taken_at)


def _visible_without_nvml(kind: str) -> Reading:
    # Without the driver's library, or with the driver not loaded, CUDA cannot use a GPU either.
    if kind in (nvml_api.NO_LIBRARY, nvml_api.DRIVER_NOT_LOADED):
        return Reading.of(0)
    return Reading.error(nvml_api.MESSAGES.get(kind, kind))
