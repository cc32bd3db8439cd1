"""MNIST's data: splits of the official files as normalised numpy arrays.

'train' and 'validation' are the first ``num_train`` and the remaining images of the training
files, 'test' the t10k files. Normalisation: ``(x - 0.1307) / 0.3081`` with pixels ``x``
scaled to [0, 1], the range those constants were measured in. Knowingly fixed AlgoPerf quirk:
AlgoPerf applies them to the raw 0..255 values, which sends inputs up to ~827 and saturates
the sigmoid layer. Batching is the common numpy pipeline's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from algoperf.datasets import mnist as mnist_data

MEAN = 0.1307
STDDEV = 0.3081


class MnistFiles:
    """The decoded files, read once per data directory and part."""

    def __init__(self) -> None:
        self._parts: dict[tuple[Path, str], tuple[np.ndarray, np.ndarray]] = {}

    def split(self, split: str, data_dir: str | None, num_train: int) -> dict[str, np.ndarray]:
        """``{'inputs': float32 (N, 28, 28, 1) normalised, 'targets': int32 (N,)}``."""
        key = (mnist_data.mnist_dir(data_dir), "test" if split == "test" else "train")
        if key not in self._parts:  # 'train' and 'validation' share the training files
            self._parts[key] = mnist_data.read_mnist(*key)
        images, labels = self._parts[key]
        if split == "train":
            rows = slice(0, num_train)
        elif split == "validation":
            rows = slice(num_train, None)
        else:
            rows = slice(None)
        pixels = images[rows, :, :, None].astype(np.float32) / 255.0
        return {"inputs": (pixels - MEAN) / STDDEV, "targets": labels[rows].astype(np.int32)}
