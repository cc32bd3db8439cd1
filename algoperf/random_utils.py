"""AlgoPerf's PRNG facade: ``PRNGKey``, ``split`` and ``fold_in``, identical in JAX and PyTorch.

The runner derives every random stream of a trial (data order, model init, optimizer init, the
per-step rngs handed to the submission) from one seed through these three functions. It calls
``set_framework`` first: with ``"jax"`` they are the real ``jax.random`` functions (JAX is
imported lazily); with ``"pytorch"`` (the default) they run a numpy implementation and this
module needs no framework at all.

Knowingly fixed AlgoPerf quirk: AlgoPerf emulates keys for PyTorch with ``np.random.RandomState``
draws, so one seed gives different rngs -- and a different data order -- in the two frameworks.
Here the numpy path is JAX's own threefry2x32 PRNG, bit-identical to ``jax.random.PRNGKey``,
``split`` and ``fold_in`` under JAX's defaults (``jax_default_prng_impl='threefry2x32'``,
``jax_threefry_partitionable=True``, both pinned by ``set_framework("jax")`` as AlgoPerf's
runner pins them). Keys are numpy ``uint32`` arrays of shape ``(2,)``; ``split`` returns
``(num, 2)``. Seeds are integers in ``[0, 2**32 - 1]``, the range JAX maps one-to-one to keys
``[0, seed]``; ``fold_in`` data likewise.

``step_rngs`` computes the runner's per-step keys for a whole block of steps in one vectorised
pass, so the training loop pays well under a microsecond per step for its rngs.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from algoperf.errors import UserError

FRAMEWORKS = ("jax", "pytorch")
MAX_SEED = 2**32 - 1

_framework = "pytorch"

# Threefry-2x32 constants (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def set_framework(framework: str) -> None:
    """Selects the backend of ``PRNGKey``/``split``/``fold_in``: ``"jax"`` or ``"pytorch"``."""
    global _framework
    if framework not in FRAMEWORKS:
        raise UserError(f"framework must be one of {', '.join(FRAMEWORKS)}, not {framework!r}.")
    if framework == "jax":
        import jax

        # AlgoPerf's runner pins these at import time; they are also JAX's current defaults.
        jax.config.update("jax_default_prng_impl", "threefry2x32")
        jax.config.update("jax_threefry_partitionable", True)
    _framework = framework


def get_framework() -> str:
    """The backend selected by ``set_framework`` (``"pytorch"`` until it is called)."""
    return _framework


def PRNGKey(seed: int) -> Any:  # noqa: N802 -- AlgoPerf's (and JAX's) name
    """The key of an integer seed in ``[0, 2**32 - 1]``: ``[0, seed]`` as uint32."""
    seed = _checked_uint32(seed, "rng seed")
    if _framework == "jax":
        import jax

        return jax.random.PRNGKey(seed)
    return np.array([0, seed], dtype=np.uint32)


def split(key: Any, num: int = 2) -> Any:
    """``num`` new independent keys derived from ``key``, as an array of shape ``(num, 2)``."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"split needs num >= 0, got {num}.")
    if _framework == "jax":
        import jax

        return jax.random.split(key, num)
    k0, k1 = _as_key(key)
    counts = np.arange(num, dtype=np.uint32)
    return np.stack(threefry2x32(k0, k1, np.zeros_like(counts), counts), axis=-1)


def fold_in(key: Any, data: int) -> Any:
    """A new key that mixes the integer ``data`` (in ``[0, 2**32 - 1]``) into ``key``."""
    data = _checked_uint32(data, "fold_in data")
    if _framework == "jax":
        import jax

        return jax.random.fold_in(key, data)
    k0, k1 = _as_key(key)
    hi, lo = threefry2x32(k0, k1, np.zeros(1, np.uint32), np.array([data], np.uint32))
    return np.concatenate([hi, lo])


def step_rngs(rng: Any, first_step: int, count: int, num: int = 4) -> np.ndarray:
    """The runner's per-step keys for steps ``first_step .. first_step + count - 1``.

    Row ``i`` equals ``split(fold_in(rng, first_step + i), num)``; the result has shape
    ``(count, num, 2)`` and dtype uint32, whatever the framework (JAX accepts these raw keys).
    """
    first_step, count, num = map(operator.index, (first_step, count, num))
    if first_step < 0 or count < 0 or num < 0 or first_step + count > MAX_SEED + 1:
        raise ValueError(
            f"step_rngs needs 0 <= first_step, count, num and steps below 2**32; got "
            f"first_step={first_step}, count={count}, num={num}."
        )
    k0, k1 = _as_key(rng)
    steps = np.arange(first_step, first_step + count, dtype=np.uint64).astype(np.uint32)
    step_k0, step_k1 = threefry2x32(k0, k1, np.zeros_like(steps), steps)
    sub = np.arange(num, dtype=np.uint32)[None, :]
    bits = threefry2x32(step_k0[:, None], step_k1[:, None], np.zeros_like(sub), sub)
    return np.stack(bits, axis=-1)


def threefry2x32(
    k0: Any, k1: Any, x0: np.ndarray, x1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The 20-round Threefry-2x32 block cipher of JAX, element-wise over broadcast uint32 arrays.

    Encrypts the counter words ``(x0, x1)`` under the key words ``(k0, k1)``; ``x0``/``x1`` must
    be arrays of at least one dimension (numpy warns on wrapping scalar arithmetic).
    """
    keys = (k0, k1, k0 ^ k1 ^ _KEY_PARITY)
    x0 = x0 + keys[0]
    x1 = x1 + keys[1]
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(rotation)) | (x1 >> np.uint32(32 - rotation))) ^ x0
        x0 = x0 + keys[(group + 1) % 3]
        x1 = x1 + keys[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _checked_uint32(value: Any, what: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise UserError(f"{what} must be an integer, got {value!r}.") from None
    if not 0 <= value <= MAX_SEED:
        raise UserError(f"{what} must be in [0, {MAX_SEED}], got {value}; pick one in range.")
    return value


def _as_key(key: Any) -> tuple[np.uint32, np.uint32]:
    """The two uint32 words of a raw key (numpy or JAX array, or a pair of ints)."""
    array = np.asarray(key)
    valid = array.shape == (2,) and array.dtype.kind in "iu"
    if valid and array.dtype.kind == "i":
        valid = bool((array >= 0).all() and (array <= MAX_SEED).all())
    if not valid:
        raise TypeError(
            f"a PRNG key is a uint32 array of shape (2,); got shape {array.shape}, "
            f"dtype {array.dtype}."
        )
    k0, k1 = array.astype(np.uint32)
    return k0, k1
