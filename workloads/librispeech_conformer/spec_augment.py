"""SpecAugment's random draws without JAX, bit-identical to the JAX model's.

The JAX model draws SpecAugment's four uniform arrays (time-mask lengths and starts, frequency-
mask lengths and starts) as ``jax.random.uniform(k, (batch, count))`` for the four keys of
``jax.random.split(key, 4)``. The PyTorch model draws the same numbers here, from the same
key, with ``algoperf.random_utils``' numpy threefry, so for one rng both frameworks mask the
same frames and bins (AlgoPerf's PyTorch draws its own, from ``torch.rand``). Written by hand
because no library outside JAX computes JAX's bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf import random_utils


def uniform(key: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``jax.random.uniform(key, shape)`` (float32 in [0, 1)) under threefry2x32 with
    partitionable bits, JAX's configuration here: the bits of element ``i`` are the XOR of the
    two words of threefry(key, (i >> 32, i & 0xffffffff)); their top 23 bits are the mantissa
    of a float in [1, 2), minus 1."""
    k0, k1 = np.asarray(key).astype(np.uint32)
    index = np.arange(int(np.prod(shape)), dtype=np.uint64)
    high = (index >> np.uint64(32)).astype(np.uint32)
    low = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    word0, word1 = random_utils.threefry2x32(k0, k1, high, low)
    bits = (word0 ^ word1).astype(np.uint32)
    floats = ((bits >> np.uint32(9)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1)
    return np.maximum(floats, np.float32(0)).reshape(shape)


def draws(key: Any, batch: int, time_masks: int, freq_masks: int) -> list[np.ndarray]:
    """The four draws of the JAX model's ``spec_augment`` for ``key``."""
    keys = random_utils.split(np.asarray(key).astype(np.uint32), 4)
    shapes = [(batch, time_masks)] * 2 + [(batch, freq_masks)] * 2
    return [uniform(k, shape) for k, shape in zip(keys, shapes, strict=True)]
