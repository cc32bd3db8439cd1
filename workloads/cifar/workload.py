"""The CIFAR-10 development workload, framework-free part: sizes, constants, split.

AlgoPerf's ``cifar``: ResNet-18 with a 3x3 stem on CIFAR-10; target 0.85 validation and test
accuracy, budget 3,600 s, eval every 600 s, eval batch 1,024 (all in the registry row
``cifar``). Data: the arrays ``algoperf datasets download cifar10`` prepares in
``<data_dir>/cifar10/``, read, augmented and normalised by ``input_pipeline``; 'eval_train'
is a prefix of 'train' as long as the validation split rounded up to whole eval batches
(5,120).

Split sizes follow the prepared data: the official archive gives 45,000 / 5,000 / 10,000; a
smaller prepared set (the synthetic one of ``algoperf workloads check``, or a non-official
dataset manifest, whose root then differs from the official one in every run log) keeps the
rules -- validation is the last tenth of the training images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.datasets import cifar10 as cifar10_data
from algoperf.workloads.cifar import input_pipeline
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload


class BaseCifarWorkload(ImageClassificationWorkload):
    """CIFAR-10, framework-free: the JAX and PyTorch ``CifarWorkload`` classes build on it."""

    workload_name = "cifar"
    num_classes = cifar10_data.NUM_CLASSES
    input_shape = cifar10_data.IMAGE_SHAPE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # Sizes.

    def _count(self, part: str) -> int:
        if part in self._parts:
            return len(self._parts[part][1])
        return input_pipeline.OFFICIAL_COUNTS[part]

    @property
    def num_validation_examples(self) -> int:
        return self._count("train") // input_pipeline.VALIDATION_FRACTION

    @property
    def num_train_examples(self) -> int:
        return self._count("train") - self.num_validation_examples

    @property
    def num_test_examples(self) -> int:
        return self._count("test")

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 1024

    @property
    def train_mean(self) -> tuple[float, float, float]:
        return input_pipeline.MEAN

    @property
    def train_stddev(self) -> tuple[float, float, float]:
        return input_pipeline.STDDEV

    # Data.

    def _load_parts(self, data_dir: str | None) -> None:
        """Reads both prepared parts once: the split sizes depend on both."""
        if not self._parts:
            self._parts = input_pipeline.load_parts(data_dir)

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        """uint8 images (N, 32, 32, 3) and int32 labels; normalised later, per batch."""
        self._load_parts(data_dir)
        images, labels = self._parts["test" if split == "test" else "train"]
        if split == "train":
            rows = slice(0, self.num_train_examples)
        elif split == "validation":
            rows = slice(self.num_train_examples, None)
        else:
            rows = slice(None)
        return {"inputs": images[rows], "targets": labels[rows].astype(np.int32)}

    def _read_split_sizes(self, data_dir: str | None) -> None:
        """Reads what the split sizes follow: both prepared parts (validation is the end of
        the training file)."""
        self._load_parts(data_dir)

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ) -> Iterator[dict[str, spec.Tensor]]:
        """``input_pipeline.batches`` of ``split`` as the framework's tensors."""
        del cache  # the arrays always stay in memory
        arrays = self._split_arrays(split, data_dir)
        seed = pipeline.seed_from_rng(data_rng) if split == "train" else None
        repeat = repeat_final_dataset is None or repeat_final_dataset
        stream = input_pipeline.batches(arrays, split, global_batch_size, seed, repeat,
                                        num_batches)
        return map(self._to_framework_batch, stream)
