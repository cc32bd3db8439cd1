"""The MNIST development workload, framework-free part: sizes and constants (AlgoPerf's).

Split as in AlgoPerf: 'train' is the first 50,000 training images, 'validation' the last
10,000, 'test' the 10,000 t10k images; 'eval_train' is the first 10,000 training images.
Model: an MLP 784 -> 128 (sigmoid) -> 10. Data: ``input_pipeline`` over the four official
files that ``algoperf.datasets.mnist`` reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.datasets import mnist as mnist_data
from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.mnist import input_pipeline

NUM_CLASSES = mnist_data.NUM_CLASSES
INPUT_SHAPE = (mnist_data.IMAGE_SIZE, mnist_data.IMAGE_SIZE, 1)
HIDDEN_SIZES = (128,)


class BaseMnistWorkload(ImageClassificationWorkload):
    """MNIST, framework-free: the JAX and PyTorch ``MnistWorkload`` classes build on it."""

    workload_name = "mnist"
    num_classes = NUM_CLASSES
    input_shape = INPUT_SHAPE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data = input_pipeline.MnistFiles()

    @property
    def num_train_examples(self) -> int:
        return 50_000

    @property
    def num_validation_examples(self) -> int:
        return 10_000

    @property
    def num_test_examples(self) -> int:
        return 10_000

    @property
    def eval_batch_size(self) -> int:
        return 10_000

    @property
    def train_mean(self) -> float:
        return input_pipeline.MEAN

    @property
    def train_stddev(self) -> float:
        return input_pipeline.STDDEV

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        return self._data.split(split, data_dir, self.num_train_examples)
