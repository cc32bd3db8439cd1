"""What NVML says about the GPUs: per-GPU fields, driver-level fields and the topology.

Each field is one NVML query (tooling-anchors §3.2) read as a `Reading`. Enumerations are stored
as names ("enabled", "default", nvidia-smi's topology labels) so profiles and difference lists
read like ``nvidia-smi -q``; numbers keep NVML's units (bytes, mW, MHz).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from algoperf.hardware.nvml import Nvml
from algoperf.hardware.readings import Reading

FEATURE = {0: "disabled", 1: "enabled"}
COMPUTE_MODE = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
# nvidia-smi topo -m labels for nvmlDeviceGetTopologyCommonAncestor levels.
ANCESTOR = {0: "INT", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
# nvidia-smi topo -p2p labels for nvmlDeviceGetP2PStatus results.
P2P_STATUS = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DIS", 5: "NS", 6: "U"}

# Bits of nvmlDeviceGetCurrentClocksEventReasons (formerly ...ThrottleReasons).
CLOCK_EVENT_REASONS = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that slow a busy GPU below its configured clocks: what "throttled" means here.
THROTTLE_REASONS = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown",
                              "hw_thermal_slowdown", "hw_power_brake_slowdown"})


def clock_event_names(mask: int) -> list[str]:
    """The named reasons in a clock-event bit mask; unknown bits as ``bit_0x...``."""
    names = [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    return names + [f"bit_{1 << b:#x}" for b in range(64) if unknown >> b & 1]


def _named(table: dict[int, str]) -> Callable[[Any], Any]:
    return lambda value: table.get(value, str(value))


def _mapped(reading: Reading, fn: Callable[[Any], Any]) -> Reading:
    return Reading.of(fn(reading.value)) if reading.ok else reading


def read_system(nvml: Nvml) -> dict[str, Reading]:
    return {
        "driver_version": nvml.query("nvmlSystemGetDriverVersion"),
        "cuda_driver_version": nvml.query("nvmlSystemGetCudaDriverVersion"),
        "nvml_version": nvml.query("nvmlSystemGetNVMLVersion"),
        "gpu_count": nvml.query("nvmlDeviceGetCount"),
    }


def read_gpu(nvml: Nvml, handle: Any) -> dict[str, Reading]:
    """Every per-GPU field of the fingerprint (see `fingerprint.GPU_FIELDS`)."""
    q, c = nvml.query, nvml.constant
    sm, mem = c("NVML_CLOCK_SM"), c("NVML_CLOCK_MEM")
    pci = q("nvmlDeviceGetPciInfo", handle, pick=lambda p: (p.busId, p.pciDeviceId))
    ecc = q("nvmlDeviceGetEccMode", handle)
    mig = q("nvmlDeviceGetMigMode", handle)
    fields = {
        "name": q("nvmlDeviceGetName", handle),
        "uuid": q("nvmlDeviceGetUUID", handle),
        "serial": q("nvmlDeviceGetSerial", handle),
        "vbios_version": q("nvmlDeviceGetVbiosVersion", handle),
        "compute_capability": _mapped(q("nvmlDeviceGetCudaComputeCapability", handle),
                                      lambda v: f"{v[0]}.{v[1]}"),
        "memory_total_bytes": q("nvmlDeviceGetMemoryInfo", handle, pick=lambda m: m.total),
        "pci_bus_id": _mapped(pci, lambda v: _bus_id(v[0])),
        "pci_device_id": _mapped(pci, lambda v: f"{v[1]:#010x}"),
        "pcie_gen_current": q("nvmlDeviceGetCurrPcieLinkGeneration", handle),
        "pcie_gen_max": q("nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "pcie_width_current": q("nvmlDeviceGetCurrPcieLinkWidth", handle),
        "pcie_width_max": q("nvmlDeviceGetMaxPcieLinkWidth", handle),
        "power_limit_mw": q("nvmlDeviceGetPowerManagementLimit", handle),
        "power_enforced_limit_mw": q("nvmlDeviceGetEnforcedPowerLimit", handle),
        "power_default_limit_mw": q("nvmlDeviceGetPowerManagementDefaultLimit", handle),
        "power_limit_range_mw": q("nvmlDeviceGetPowerManagementLimitConstraints", handle),
        "clock_sm_applications_mhz": q("nvmlDeviceGetApplicationsClock", handle, sm),
        "clock_mem_applications_mhz": q("nvmlDeviceGetApplicationsClock", handle, mem),
        "clock_sm_default_applications_mhz":
            q("nvmlDeviceGetDefaultApplicationsClock", handle, sm),
        "clock_mem_default_applications_mhz":
            q("nvmlDeviceGetDefaultApplicationsClock", handle, mem),
        "clock_sm_max_mhz": q("nvmlDeviceGetMaxClockInfo", handle, sm),
        "clock_mem_max_mhz": q("nvmlDeviceGetMaxClockInfo", handle, mem),
        "clock_sm_current_mhz": q("nvmlDeviceGetClockInfo", handle, sm),
        "clock_mem_current_mhz": q("nvmlDeviceGetClockInfo", handle, mem),
        "ecc_mode_current": _mapped(ecc, lambda v: FEATURE.get(v[0], str(v[0]))),
        "ecc_mode_pending": _mapped(ecc, lambda v: FEATURE.get(v[1], str(v[1]))),
        "mig_mode_current": _mapped(mig, lambda v: FEATURE.get(v[0], str(v[0]))),
        "mig_mode_pending": _mapped(mig, lambda v: FEATURE.get(v[1], str(v[1]))),
        "compute_mode": _mapped(q("nvmlDeviceGetComputeMode", handle), _named(COMPUTE_MODE)),
        "persistence_mode": _mapped(q("nvmlDeviceGetPersistenceMode", handle), _named(FEATURE)),
        "clock_event_reasons": _mapped(clock_event_reasons(nvml, handle), clock_event_names),
        "temperature_c": q("nvmlDeviceGetTemperature", handle, c("NVML_TEMPERATURE_GPU")),
        "power_usage_mw": q("nvmlDeviceGetPowerUsage", handle),
    }
    links = nvlinks(nvml, handle)
    fields["nvlink_remote_bus_ids"] = links
    fields["nvlink_active_links"] = _mapped(links, lambda v: sum(1 for remote in v if remote))
    fields["nvlink_version"] = _nvlink_version(nvml, handle, links)
    return fields


def clock_event_reasons(nvml: Nvml, handle: Any) -> Reading:
    """The clock-event (throttle) bit mask; older bindings and drivers only have the old name."""
    reading = nvml.query("nvmlDeviceGetCurrentClocksEventReasons", handle)
    if reading.ok or not hasattr(nvml.module, "nvmlDeviceGetCurrentClocksThrottleReasons"):
        return reading
    return nvml.query("nvmlDeviceGetCurrentClocksThrottleReasons", handle)


def nvlinks(nvml: Nvml, handle: Any) -> Reading:
    """Per NVLink of the GPU, the remote PCI bus id of an active link or None.

    NVML has no "number of links" call that every generation supports, so the links are probed
    in order up to the binding's NVML_NVLINK_MAX_LINKS; past the GPU's last link NVML answers
    InvalidArgument (or NotSupported). NotSupported on link 0 means the GPU has no NVLink.
    """
    remotes: list[str | None] = []
    for link in range(nvml.constant("NVML_NVLINK_MAX_LINKS", 18)):
        try:
            active = nvml.call("nvmlDeviceGetNvLinkState", handle, link)
        except nvml.Error as e:
            if link == 0 and nvml.is_error(e, "NOT_SUPPORTED", "FUNCTION_NOT_FOUND"):
                return Reading.not_supported("no NVLink")
            if link > 0 and nvml.is_error(e, "INVALID_ARGUMENT", "NOT_SUPPORTED"):
                break
            return nvml.reading_of_error(e)
        if active != nvml.constant("NVML_FEATURE_ENABLED", 1):
            remotes.append(None)
            continue
        try:
            info = nvml.module.nvmlDeviceGetNvLinkRemotePciInfo(handle, link)
            remotes.append(_bus_id(info.busId))
        except nvml.Error as e:
            return nvml.reading_of_error(e)
    return Reading.of(remotes)


def _nvlink_version(nvml: Nvml, handle: Any, links: Reading) -> Reading:
    if not links.ok:
        return links
    active = [i for i, remote in enumerate(links.value) if remote]
    if not active:
        return Reading.of(None)
    return nvml.query("nvmlDeviceGetNvLinkVersion", handle, active[0])


def read_topology(nvml: Nvml, handles: list[Any],
                  gpus: list[dict[str, Reading]]) -> dict[str, Reading]:
    """Pairwise matrices in nvidia-smi's labels: PCIe common ancestor (``topo -m``), P2P read
    capability (``topo -p2p r``) and the number of NVLinks between each pair.

    Diagonal cells are "X"; a pair whose query failed reads "ERR" (or "N/A" if unsupported).
    """
    n = len(handles)
    # The binding defines NVML_P2P_CAPS_INDEX_READ as the 1-tuple (0,) (a stray comma); ctypes
    # cannot pass a tuple, so unwrap it.
    read_index = nvml.constant("NVML_P2P_CAPS_INDEX_READ", 0)
    if isinstance(read_index, tuple):
        read_index = read_index[0]
    ancestor = _matrix(n, lambda i, j: _label(
        nvml.query("nvmlDeviceGetTopologyCommonAncestor", handles[i], handles[j]), ANCESTOR))
    p2p = _matrix(n, lambda i, j: _label(
        nvml.query("nvmlDeviceGetP2PStatus", handles[i], handles[j], read_index), P2P_STATUS))
    return {"pcie_common_ancestor": Reading.of(ancestor), "p2p_read": Reading.of(p2p),
            "nvlink": nvlink_matrix(gpus)}


def nvlink_matrix(gpus: list[dict[str, Reading]]) -> Reading:
    """Links from GPU i whose far end is GPU j (links to an NVSwitch count for no pair)."""
    links = [g["nvlink_remote_bus_ids"] for g in gpus]
    if not all(r.ok for r in links):
        if all(r.status == "not_supported" for r in links):
            return Reading.not_supported("no NVLink")
        return Reading.error("NVLink state unreadable on some GPU")
    index = {g["pci_bus_id"].value: i for i, g in enumerate(gpus) if g["pci_bus_id"].ok}
    matrix: list[list[Any]] = [[0] * len(gpus) for _ in gpus]
    for i, reading in enumerate(links):
        matrix[i][i] = "X"
        for remote in reading.value:
            j = index.get(remote)
            if j is not None and j != i:
                matrix[i][j] += 1
    return Reading.of(matrix)


def _matrix(n: int, cell: Callable[[int, int], str]) -> list[list[str]]:
    return [["X" if i == j else cell(i, j) for j in range(n)] for i in range(n)]


def _label(reading: Reading, table: dict[int, str]) -> str:
    if reading.ok:
        return table.get(reading.value, str(reading.value))
    return "N/A" if reading.status == "not_supported" else "ERR"


def _bus_id(bus_id: Any) -> str:
    """A PCI bus id in one spelling, ``dddd:bb:dd.f`` in lower case: NVML writes an 8-digit
    domain in busId ("00000000:06:00.0") and a 4-digit one in other places."""
    text = (bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)).strip().lower()
    parts = text.split(":")
    if len(parts) != 3:
        return text
    return f"{int(parts[0], 16):04x}:{parts[1]}:{parts[2]}"
