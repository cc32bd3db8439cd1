"""PyTorch process setup and model helpers, with AlgoPerf v0.6's names and signatures.

``pytorch_setup`` reads the torchrun environment, ``pytorch_init`` prepares the process (and the
DDP process group), ``sync_ddp_time`` makes all ranks agree on a clock reading,
``update_batch_norm_fn`` freezes or unfreezes batch-norm running statistics, and the
``CustomDropout`` modules take their dropout rate at call time (v0.6: dropout may change during
training). Everything also works on a CPU-only machine: DDP then uses the gloo backend.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from algoperf import distributed, spec
from algoperf.errors import UserError


def pytorch_setup() -> tuple[bool, int, torch.device, int]:
    """``(use_pytorch_ddp, rank, device, n_gpus)``: DDP iff launched by torchrun (LOCAL_RANK)."""
    use_pytorch_ddp = "LOCAL_RANK" in os.environ
    rank = 0
    if use_pytorch_ddp:
        try:
            rank = int(os.environ["LOCAL_RANK"])
        except ValueError:
            raise UserError(
                f"LOCAL_RANK must be an integer, got {os.environ['LOCAL_RANK']!r}; "
                "launch with torchrun or unset it."
            ) from None
    device = torch.device(f"cuda:{rank}" if torch.cuda.is_available() else "cpu")
    return use_pytorch_ddp, rank, device, torch.cuda.device_count()


def pytorch_init(use_pytorch_ddp: bool, rank: int, profiler: Any) -> None:
    """Prepares this process to train with PyTorch; joins the DDP process group if asked.

    JAX, if installed, is kept off the GPUs (PyTorch owns them): already imported, it is
    switched to CPU; otherwise the environment makes it start on CPU. Under DDP only rank 0
    logs below WARNING, and ``profiler`` (anything with ``set_local_rank``) learns the rank.
    """
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_platforms", "cpu")
    else:
        os.environ["JAX_PLATFORMS"] = "cpu"
    # Let cuDNN benchmark its convolution algorithms and keep the fastest.
    torch.backends.cudnn.benchmark = True
    if not use_pytorch_ddp:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(rank)
    if profiler is not None:
        profiler.set_local_rank(rank)
    if rank != 0:
        logging.getLogger().setLevel(logging.WARNING)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # Left to interpreter exit, the group's threads can abort a finished process.
        atexit.register(distributed.leave_process_group)


def sync_ddp_time(time: float, device: torch.device) -> float:
    """The maximum of ``time`` over all DDP ranks (``time`` itself outside a process group)."""
    if not dist.is_initialized():
        return time
    time_tensor = torch.tensor(time, dtype=torch.float64, device=device)
    dist.all_reduce(time_tensor, op=dist.ReduceOp.MAX)
    return time_tensor.item()


def is_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` keeps batch-norm running statistics updated with a ``momentum``.

    Covers ``torch.nn`` batch norms and the workloads' own batch-norm classes (AlgoPerf lists
    its Conformer and DeepSpeech classes; here any module with a ``running_mean`` buffer and a
    ``momentum`` attribute qualifies).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return True
    return isinstance(getattr(module, "running_mean", None), Tensor) and hasattr(
        module, "momentum"
    )


def update_batch_norm_fn(module: spec.ParameterContainer, update_batch_norm: bool) -> None:
    """Freezes (False) or restores (True) a batch-norm layer's running-statistics momentum.

    Meant for ``model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=...))``.
    Freezing saves the original momentum in ``momentum_backup`` once, so repeated freezes never
    overwrite it with 0 (AlgoPerf v0.6's fix), and sets the momentum to 0 (a zero tensor if the
    momentum is a tensor). Restoring is a no-op for a layer that was never frozen.
    """
    if not is_batch_norm(module):
        return
    if not update_batch_norm:
        if not hasattr(module, "momentum_backup"):
            module.momentum_backup = module.momentum
        if torch.is_tensor(module.momentum_backup):
            module.momentum = torch.zeros_like(module.momentum_backup)
        else:
            module.momentum = 0.0
    elif hasattr(module, "momentum_backup"):
        module.momentum = module.momentum_backup


class CustomDropout(nn.Module):
    """Element-wise dropout whose rate is an argument of ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p, training=self.training)


class CustomDropout2d(nn.Module):
    """Channel-wise (2-D) dropout whose rate is an argument of ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        return F.dropout2d(x, p, training=self.training)


class SequentialWithDropout(nn.Sequential):
    """``nn.Sequential`` that passes the dropout rate to the members that take one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        for module in self:
            if getattr(module, "_supports_custom_dropout", False):
                x = module(x, p)
            else:
                x = module(x)
        return x
