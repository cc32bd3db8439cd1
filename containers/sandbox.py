"""The sandbox a containerised run gets: what it may see, write and use.

`container_settings` turns a `Sandbox` into the docker SDK's keyword arguments (it needs no
engine, so the exact settings are testable on their own). The sandbox: no network (only the
loopback interface), a read-only root file system, read-only data and submission mounts, one
writable mount (the run's output folder), a private /tmp in memory, every capability dropped,
no privilege gain through setuid binaries, an unprivileged user, a bounded number of
processes, a private IPC namespace with a sized /dev/shm, GPUs only by UUID, and an
environment of listed variables only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, Mount

RUN_LABEL = "org.algoperf.run"


@dataclasses.dataclass(frozen=True)
class BindMount:
    source: Path  # on the host
    target: str  # in the container
    read_only: bool = True


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """Everything the container of one run is given."""

    image_id: str
    command: tuple[str, ...]
    mounts: tuple[BindMount, ...]
    user: str  # "uid:gid", never 0
    environment: dict[str, str]
    pids_limit: int = 4096
    shm_size: str = "2g"
    tmp_size: str = "4g"
    memory: str | None = None
    cpus: float | None = None
    gpu_uuids: tuple[str, ...] = ()
    tty: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def container_settings(sandbox: Sandbox) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create(**settings)``."""
    if sandbox.user.split(":")[0] in ("0", "root"):
        raise ValueError("the sandbox never runs as root")
    writable = [m for m in sandbox.mounts if not m.read_only]
    if len(writable) > 1:
        raise ValueError("the sandbox has one writable mount, the run's output folder")
    settings: dict[str, Any] = {
        "image": sandbox.image_id,
        "command": list(sandbox.command),
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "user": sandbox.user,
        "environment": dict(sandbox.environment),
        "mounts": [Mount(m.target, str(m.source), type="bind", read_only=m.read_only)
                   for m in sandbox.mounts],
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={sandbox.tmp_size}"},
        "pids_limit": sandbox.pids_limit,
        "ipc_mode": "private",
        "shm_size": sandbox.shm_size,
        # tini as PID 1 passes signals on to `algoperf run` and reaps its children.
        "init": True,
        "stop_signal": "SIGINT",
        "tty": sandbox.tty,
        "labels": {RUN_LABEL: "1", **sandbox.labels},
    }
    if sandbox.memory is not None:
        settings["mem_limit"] = sandbox.memory
        settings["memswap_limit"] = sandbox.memory  # no swap beyond the limit
    if sandbox.cpus is not None:
        settings["nano_cpus"] = int(sandbox.cpus * 1e9)
    if sandbox.gpu_uuids:
        settings["device_requests"] = [DeviceRequest(
            device_ids=list(sandbox.gpu_uuids), capabilities=[["gpu", "compute", "utility"]])]
    return settings
