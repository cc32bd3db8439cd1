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
# XLA compiles on the calling thread and recurses over the program; on the default 8 MiB
# main-thread stack the largest programs crash the process (a segfault; measured: JAX
# Shampoo's blocked preconditioners on the Conformer). Linux grows the main thread's stack up
# to the soft limit, so raising it before the first compile is enough.
COMPILE_STACK_BYTES = 512 * 2**20


def require(framework: str) -> None:
    """Raises UserError saying how to install ``framework`` when it is missing."""
    if importlib.util.find_spec(_MODULE[framework]) is None:
        raise UserError(
            f"framework {framework!r} is not installed in this environment; "
            f"install it with: {_INSTALL[framework]}"
        )


def allow_deep_compiles() -> None:
    """Raises this process's soft stack limit to ``COMPILE_STACK_BYTES`` (or the hard limit,
    if lower), so that XLA can compile the largest workloads' programs; never lowers it."""
    try:
        import resource
    except ImportError:  # not a POSIX system: the platform's stack rules apply
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft >= COMPILE_STACK_BYTES:
        return
    wanted = COMPILE_STACK_BYTES if hard == resource.RLIM_INFINITY else min(
        COMPILE_STACK_BYTES, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))


def setup(framework: str) -> None:
    """Process-wide set-up before a workload is built (AlgoPerf's import-time side effects)."""
    require(framework)
    random_utils.set_framework(framework)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if framework == "jax":
        import jax

        allow_deep_compiles()
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
