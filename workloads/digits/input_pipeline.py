"""digits' data: scikit-learn's bundled ``load_digits()``, split and standardised in numpy.

1,797 grey 8x8 images with 17 intensity levels (0..16), 10 classes. Fixed split: the examples
are ordered by ``RandomState(0).permutation(1797)`` (numpy keeps that stream stable across
versions); the first 1,200 are 'train', the next 300 'validation' and the last 297 'test'.
Pixels are scaled to [0, 1] and standardised with the mean and standard deviation of all
training pixels (one scalar each, like MNIST's constants). Batching is the common numpy
pipeline's.
"""

from __future__ import annotations

import functools

import numpy as np

NUM_EXAMPLES = 1797
SPLIT_SIZES = {"train": 1200, "validation": 300, "test": 297}
SPLIT_SEED = 0
MAX_PIXEL = 16.0


@functools.cache
def _digits_scaled() -> tuple[np.ndarray, np.ndarray]:
    """All images as float32 (N, 8, 8, 1) in [0, 1] and int32 labels, in split order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.RandomState(SPLIT_SEED).permutation(NUM_EXAMPLES)
    images = (digits.images[order] / MAX_PIXEL).astype(np.float32)[..., None]
    return images, digits.target[order].astype(np.int32)


def _split_slice(split: str) -> slice:
    start = 0
    for name, size in SPLIT_SIZES.items():
        if name == split:
            return slice(start, start + size)
        start += size
    raise ValueError(f"digits has no split {split!r}")


def train_moments() -> tuple[float, float]:
    """Mean and standard deviation of all training pixels, in [0, 1] units."""
    images, _ = _digits_scaled()
    train = images[_split_slice("train")]
    return float(train.mean()), float(train.std())


def load_split(split: str, mean: float, stddev: float) -> dict[str, np.ndarray]:
    """``{'inputs': float32 (N, 8, 8, 1) standardised, 'targets': int32 (N,)}`` of ``split``."""
    images, labels = _digits_scaled()
    rows = _split_slice(split)
    inputs = (images[rows] - mean) / stddev
    return {"inputs": inputs.astype(np.float32), "targets": labels[rows]}
