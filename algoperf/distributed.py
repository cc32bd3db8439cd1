"""Several processes or devices: how a run is launched, who writes, what every rank agrees on.

PyTorch uses several GPUs as AlgoPerf does, one process per GPU started by
``torchrun --standalone --nnodes=1 --nproc_per_node=N -m algoperf run ...``; JAX uses every
local device from one process (batches sharded along the batch axis, ``jax_sharding_utils``).

:func:`ddp_launch_plan` decides, from the GPU count and the environment alone, whether this
process may run: a single PyTorch process on a machine with several GPUs is refused with the
exact torchrun command (it would otherwise train on one GPU of eight), as are torchrun for JAX,
several machines, and a process count that differs from the GPU count.

:class:`Ranks` is what the runner asks of the processes of a run. Rank 0 alone creates folders
and writes logs, events and checkpoints (the others get :class:`NullEventLog` and
:class:`NullMetricLogger`); every decision that could differ between ranks is taken once:
rank 0's answers are broadcast (:meth:`Ranks.from_writer`), the clock is the maximum over the
ranks (``pytorch_utils.sync_ddp_time``, as AlgoPerf's ``get_time``), a stop wanted by any rank
stops all (:meth:`Ranks.any`), and a UserError on any rank ends every rank
(:meth:`Ranks.agree`). The module imports no framework until a process group is used.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from algoperf.errors import UserError

T = TypeVar("T")

TORCHRUN = "torchrun --standalone --nnodes=1"
# How long a leaving rank waits for the others at the final barrier.
LEAVE_TIMEOUT = datetime.timedelta(seconds=30)


class ReportedOnRankZero(UserError):
    """A failure that rank 0 reports; the other ranks exit with the same status, silently."""


def process_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank under torchrun (``RANK``), 0 otherwise or when unreadable."""
    env = os.environ if env is None else env
    try:
        return int(env.get("RANK", "0"))
    except ValueError:
        return 0


def reported_elsewhere(error: BaseException) -> bool:
    """Whether the CLI should leave ``error`` unprinted: rank 0 prints it for every rank."""
    return isinstance(error, ReportedOnRankZero)


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """How this process takes part in a run: ``world_size`` processes, this one ``rank``."""

    world_size: int = 1
    rank: int = 0


def torchrun_command(num_processes: int, args: Sequence[str] | None) -> str:
    """The command that starts this run as ``num_processes`` torchrun ranks."""
    rest = shlex.join(args) if args else "run <the same options>"
    return f"{TORCHRUN} --nproc_per_node={num_processes} -m algoperf {rest}"


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    if name not in env:
        return None
    try:
        return int(env[name])
    except ValueError:
        raise UserError(f"{name} must be an integer, got {env[name]!r}; launch with torchrun or "
                        "unset it") from None


def ddp_launch_plan(framework: str, num_gpus: int, env: Mapping[str, str],
                    args: Sequence[str] | None = None) -> LaunchPlan:
    """The launch of this process, or a UserError naming the command to use instead.

    ``num_gpus`` is the number of visible CUDA GPUs, ``env`` the process environment (torchrun
    sets ``LOCAL_RANK``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``) and ``args`` the
    command-line arguments after ``algoperf`` (for the suggested torchrun command).
    """
    if "LOCAL_RANK" not in env:
        if framework == "pytorch" and num_gpus > 1:
            raise UserError(
                f"{num_gpus} CUDA GPUs are visible but this PyTorch run is one process, which "
                f"would train on one of them; start one process per GPU with: "
                f"{torchrun_command(num_gpus, args)} (or set CUDA_VISIBLE_DEVICES=0 to train "
                "on one GPU)")
        return LaunchPlan()
    _env_int(env, "LOCAL_RANK")
    world_size = _env_int(env, "WORLD_SIZE")
    if world_size is None:
        raise UserError("LOCAL_RANK is set but WORLD_SIZE is not; start several processes with "
                        f"{TORCHRUN} --nproc_per_node=N -m algoperf run ..., or unset LOCAL_RANK")
    local_world_size = _env_int(env, "LOCAL_WORLD_SIZE") or world_size
    rank = _env_int(env, "RANK") or 0
    if framework == "jax":
        if world_size == 1:
            return LaunchPlan()
        raise UserError(
            f"torchrun started {world_size} processes, but a JAX run uses every local device "
            "from one process; run the same algoperf run command without torchrun")
    if local_world_size != world_size:
        raise UserError(
            f"torchrun started {world_size} processes on {world_size // local_world_size} "
            f"machines; runs here are on one machine: use {TORCHRUN} "
            f"--nproc_per_node={local_world_size}")
    if num_gpus and world_size != num_gpus:
        raise UserError(
            f"torchrun started {world_size} processes but {num_gpus} CUDA GPUs are visible; use "
            f"--nproc_per_node={num_gpus}, or CUDA_VISIBLE_DEVICES to choose {world_size} GPUs")
    return LaunchPlan(world_size=world_size, rank=rank)


def check_launch(framework: str, args: Sequence[str] | None = None) -> LaunchPlan:
    """:func:`ddp_launch_plan` of this machine's GPUs and this process's environment."""
    num_gpus = 0
    if framework == "pytorch":
        from algoperf import frameworks

        frameworks.require(framework)
        num_gpus = frameworks.cuda_device_count()
    return ddp_launch_plan(framework, num_gpus, os.environ, args)


class Ranks:
    """The processes of a run, as the runner sees them; this base class is one process."""

    rank: int = 0
    world_size: int = 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the run's files (rank 0 only)."""
        return self.rank == 0

    def clock(self) -> float:
        """``time.perf_counter()``; under DDP the latest reading over the ranks (one machine:
        perf_counter is its monotonic clock, the same in every process)."""
        return time.perf_counter()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        return bool(flag)

    def from_writer(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only; every rank gets its value, or its exception."""
        return fn()

    def agree(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on every rank; a UserError on any rank is raised on all of them."""
        return fn()

    def writer_opens(self, open_fn: Callable[[], T], null: Any) -> T:
        """``open_fn()`` on rank 0, ``null`` on the others; rank 0's failure ends every rank."""
        opened: list[T] = []
        self.from_writer(lambda: opened.append(open_fn()))
        return opened[0] if self.writer else null

    def check_same(self, what: str, value: Any) -> None:
        """Raises on every rank unless ``value`` is equal on all of them."""


class TorchRanks(Ranks):
    """The ranks of a PyTorch DDP process group (gloo on the CPU, NCCL on GPUs)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        from algoperf.pytorch_utils import pytorch_setup

        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self._device = pytorch_setup()[2]

    def clock(self) -> float:
        from algoperf.pytorch_utils import sync_ddp_time

        return sync_ddp_time(time.perf_counter(), self._device)

    def any(self, flag: bool) -> bool:
        import torch

        tensor = torch.tensor(float(bool(flag)), dtype=torch.float64, device=self._device)
        self._dist.all_reduce(tensor, op=self._dist.ReduceOp.MAX)
        return bool(tensor.item())

    def _gather(self, value: Any) -> list[Any]:
        values: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(values, value)
        return values

    def from_writer(self, fn: Callable[[], T]) -> T:
        box: list[Any] = [None]
        error = None
        if self.writer:
            try:
                box[0] = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - re-raised below, after the others know
                error = e
                box[0] = ("error", _describe(e))
        self._dist.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        kind, value = box[0]
        if kind == "error":
            raise ReportedOnRankZero(value)
        return value

    def agree(self, fn: Callable[[], T]) -> T:
        error, result = None, None
        try:
            result = fn()
        except UserError as e:
            error = e
        outcomes = self._gather(None if error is None else _describe(error))
        failed = [(rank, message) for rank, message in enumerate(outcomes) if message]
        if not failed:
            return result  # type: ignore[return-value]
        if not self.writer:
            raise ReportedOnRankZero(failed[0][1])
        if error is not None:
            raise error
        rank, message = failed[0]
        raise UserError(f"rank {rank}: {message}")

    def check_same(self, what: str, value: Any) -> None:
        values = self._gather(value)
        if all(v == values[0] for v in values):
            return
        message = (f"the ranks disagree about {what} ("
                   + "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
                   + "), so they cannot continue in step; rerun with --resume")
        if not self.writer:
            raise ReportedOnRankZero(message)
        raise UserError(message)


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


def leave_process_group() -> None:
    """Destroys this process's PyTorch process group, if it joined one, once every rank is
    done with it (registered at exit by ``pytorch_utils.pytorch_init``).

    Left to interpreter finalisation, gloo's worker threads can abort a finished process
    ("terminate called without an active exception", exit -6): they still hold work objects
    whose tensors need the interpreter, or a peer that already left closes the sockets under
    a pending receive. So the garbage that holds finished work (a DDP reducer, a traceback's
    frames) is collected first, and on gloo the ranks meet at a bounded barrier before any of
    them leaves; a rank that is gone only costs the barrier's timeout.
    """
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=LEAVE_TIMEOUT, wait_all_ranks=True)
        except RuntimeError:  # a rank already left or died: nothing is pending on it
            pass
    dist.destroy_process_group()


def ranks_of(framework: str) -> Ranks:
    """The ranks of this run: a PyTorch process group once joined, else one process."""
    if framework == "pytorch":
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_world_size() > 1:
            return TorchRanks()
    return Ranks()


class NullEventLog:
    """The event log of a rank that writes nothing (every rank but 0)."""

    def append(self, type: str, data: Mapping[str, Any]) -> None:
        """Discards the event."""

    def __enter__(self) -> NullEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class NullMetricLogger:
    """The measurements logger of a rank that writes nothing; submissions may call it alike."""

    def append_scalar_metrics(self, metrics: Mapping[str, Any], global_step: int,
                              preemption_count: int | None = None,
                              is_eval: bool = False) -> None:
        """Discards the row."""

    def truncate_evals_after(self, global_step: int) -> int:
        return 0

    def finish(self) -> None:
        pass
