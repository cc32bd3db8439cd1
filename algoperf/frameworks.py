"""What the runner needs from JAX or PyTorch: set-up, a device sync for the clock, device count.

The framework is imported here only when a run asks for it, so a missing framework becomes one
clear line instead of an ImportError deep inside a workload.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from algoperf import random_utils
from algoperf.errors import UserError

_INSTALL = {
    "jax": "pip install -e '.[jax]'",
    "pytorch": "pip install -e '.[pytorch]'",
}
_MODULE = {"jax": "jax", "pytorch": "torch"}


def require(framework: str) -> None:
    """Raises UserError saying how to install ``framework`` when it is missing."""
    if importlib.util.find_spec(_MODULE[framework]) is None:
        raise UserError(
            f"framework {framework!r} is not installed in this environment; "
            f"install it with: {_INSTALL[framework]}"
        )


def setup(framework: str) -> None:
    """Process-wide set-up before a workload is built (AlgoPerf's import-time side effects)."""
    require(framework)
    random_utils.set_framework(framework)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if framework == "jax":
        import jax

        jax.config.update("jax_default_prng_impl", "threefry2x32")
        jax.config.update("jax_threefry_partitionable", True)
    else:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        from algoperf import pytorch_utils

        use_ddp, rank, _, _ = pytorch_utils.pytorch_setup()
        pytorch_utils.pytorch_init(use_ddp, rank, None)


def device_count(framework: str) -> int:
    """Accelerators visible to ``framework``; 1 on a CPU-only machine."""
    if framework == "jax":
        import jax

        return max(1, jax.local_device_count())
    import torch

    return max(1, torch.cuda.device_count())


def cuda_device_count() -> int:
    """CUDA GPUs visible to PyTorch (0 on a CPU-only machine)."""
    import torch

    return torch.cuda.device_count()


def syncer(framework: str) -> Callable[[Any], None]:
    """A function that waits until the device has finished computing ``tree``.

    The runner calls it before reading the clock at eval points, so asynchronously dispatched
    work is charged to the submission, not to the eval that would otherwise wait for it.
    """
    if framework == "jax":
        import jax

        return jax.block_until_ready
    import torch

    if torch.cuda.is_available():
        return lambda tree: torch.cuda.synchronize()
    return lambda tree: None
