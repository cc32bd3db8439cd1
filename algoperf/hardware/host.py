"""The host part of the fingerprint: CPU, memory, OS, container, Python and framework versions,
and which GPUs the process is allowed to see.

Nothing here imports JAX or PyTorch: framework versions come from installed package metadata,
so fingerprinting stays fast and never initialises a device.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from algoperf.hardware.readings import Reading

# Distribution name -> fingerprint field.
PACKAGES = {"jax": "jax_version", "jaxlib": "jaxlib_version", "flax": "flax_version",
            "optax": "optax_version", "torch": "torch_version", "numpy": "numpy_version",
            "nvidia-ml-py": "nvidia_ml_py_version"}


def _read(fn: Callable[[], Any]) -> Reading:
    """``fn()`` as a reading; None means the host cannot tell (not supported)."""
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - a host field never stops a fingerprint
        return Reading.error(f"{type(e).__name__}: {e}")
    return Reading.not_supported() if value is None else Reading.of(value)


def read_host(environ: Mapping[str, str] | None = None) -> dict[str, Reading]:
    """Every host field of the fingerprint (see `fingerprint.HOST_FIELDS`)."""
    env = os.environ if environ is None else environ
    fields = {
        "hostname": _read(platform.node),
        "cpu_model": _read(cpu_model),
        "cpu_cores": _read(lambda: psutil.cpu_count(logical=False)),
        "cpu_threads": _read(lambda: psutil.cpu_count(logical=True)),
        "cpu_usable": _read(lambda: len(os.sched_getaffinity(0))),
        "memory_total_bytes": _read(lambda: psutil.virtual_memory().total),
        "architecture": _read(platform.machine),
        "os": _read(os_name),
        "kernel": _read(platform.release),
        "container_runtime": _read(lambda: container_runtime(env)),
        "python_version": _read(platform.python_version),
        "cuda_visible_devices": Reading.of(env.get("CUDA_VISIBLE_DEVICES")),
        "nvidia_visible_devices": Reading.of(env.get("NVIDIA_VISIBLE_DEVICES")),
    }
    for dist, field in PACKAGES.items():
        fields[field] = _package_version(dist)
    return fields


def cpu_model() -> str | None:
    """The CPU's marketing name as /proc/cpuinfo gives it (what AlgoPerf's meta data records)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def os_name() -> str:
    try:
        return platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        return platform.platform(terse=True)


def container_runtime(environ: Mapping[str, str]) -> str:
    """"docker", "podman", another runtime's name from $container, "kubernetes", or "none"."""
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    if environ.get("container"):
        return environ["container"]
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        cgroup = ""
    for marker in ("docker", "containerd", "kubepods", "libpod", "lxc"):
        if marker in cgroup:
            return marker
    return "none"


def _package_version(dist: str) -> Reading:
    try:
        return Reading.of(metadata.version(dist))
    except metadata.PackageNotFoundError:
        return Reading.not_supported("not installed")


def visible_gpus(cuda_visible_devices: str | None, uuids: list[str]) -> list[int] | None:
    """NVML indices of the GPUs CUDA lets this process use; None when the variable names MIG
    instances (not whole GPUs).

    Unset means all. Entries are indices or unique prefixes of UUIDs; like CUDA, the list ends
    at the first invalid or repeated entry ("-1" hides every GPU). Indices are taken in NVML's
    PCI order, which is CUDA's when CUDA_DEVICE_ORDER=PCI_BUS_ID or when all GPUs are one model
    (the reference machines).
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    seen: list[int] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.startswith("MIG-"):
            return None
        if entry.isdigit():
            matches = [int(entry)] if int(entry) < len(uuids) else []
        else:
            matches = [i for i, u in enumerate(uuids) if entry and u.startswith(entry)]
        if len(matches) != 1 or matches[0] in seen:
            break
        seen.append(matches[0])
    return seen
