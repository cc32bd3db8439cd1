"""The digits development workload, framework-free part: data, split and constants.

Data: scikit-learn's bundled ``load_digits()`` -- 1,797 grey 8x8 images of handwritten digits
with 17 intensity levels (0..16), 10 classes -- so the workload needs no download and runs in
seconds on a CPU. Fixed split: the examples are ordered by ``RandomState(0).permutation(1797)``
(numpy keeps that stream stable across versions); the first 1,200 are 'train', the next 300
'validation' and the last 297 'test'. Pixels are scaled to [0, 1] and standardised with the
mean and standard deviation of all training pixels (one scalar each, like MNIST's constants).
Model: an MLP 64 -> 256 (relu) -> 256 (relu) -> 10. Targets, budget, eval period and step
hint come from the registry row ``digits``.
"""

from __future__ import annotations

import functools

import numpy as np

from algoperf.workloads.classification import ImageClassificationWorkload

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


class BaseDigitsWorkload(ImageClassificationWorkload):
    """Digits, framework-free: the JAX and PyTorch ``DigitsWorkload`` classes build on it."""

    workload_name = "digits"
    num_classes = 10
    input_shape = (8, 8, 1)
    hidden_sizes = (256, 256)
    activation = "relu"

    @property
    def num_train_examples(self) -> int:
        return SPLIT_SIZES["train"]

    @property
    def num_validation_examples(self) -> int:
        return SPLIT_SIZES["validation"]

    @property
    def num_test_examples(self) -> int:
        return SPLIT_SIZES["test"]

    @property
    def eval_batch_size(self) -> int:
        return 1024  # more than any split: one padded batch per evaluation

    @property
    def train_mean(self) -> float:
        images, _ = _digits_scaled()
        return float(images[_split_slice("train")].mean())

    @property
    def train_stddev(self) -> float:
        images, _ = _digits_scaled()
        return float(images[_split_slice("train")].std())

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        del data_dir  # bundled with scikit-learn
        images, labels = _digits_scaled()
        rows = _split_slice(split)
        inputs = (images[rows] - self.train_mean) / self.train_stddev
        return {"inputs": inputs.astype(np.float32), "targets": labels[rows]}
