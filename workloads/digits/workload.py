"""The digits development workload, framework-free part: sizes, constants and variants.

Data: scikit-learn's bundled 8x8 handwritten digits (``input_pipeline``), so the workload
needs no download and runs in seconds on a CPU: train 1,200 / validation 300 / test 297
examples, one padded eval batch per split. Model: an MLP 64 -> 256 -> 256 -> 10 with ReLU
(``digits_silu``: SiLU, the variant that exercises the variant machinery on a workload every
machine has). Targets, budget, eval period and step hint come from the registry row.
"""

from __future__ import annotations

import functools

import numpy as np

from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.digits import input_pipeline

NUM_CLASSES = 10
INPUT_SHAPE = (8, 8, 1)
HIDDEN_SIZES = (256, 256)


class BaseDigitsWorkload(ImageClassificationWorkload):
    """Digits, framework-free: the JAX and PyTorch ``DigitsWorkload`` classes build on it."""

    workload_name = "digits"
    official_split_sizes = input_pipeline.SPLIT_SIZES  # fixed: generated, the same everywhere
    variant_settings = ("activation",)
    activation = "relu"  # the hidden layers' nonlinearity
    num_classes = NUM_CLASSES
    input_shape = INPUT_SHAPE

    @property
    def eval_batch_size(self) -> int:
        return 1024  # more than any split: one padded batch per evaluation

    @functools.cached_property
    def _train_moments(self) -> tuple[float, float]:
        return input_pipeline.train_moments()

    @property
    def train_mean(self) -> float:
        return self._train_moments[0]

    @property
    def train_stddev(self) -> float:
        return self._train_moments[1]

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        del data_dir  # bundled with scikit-learn
        return input_pipeline.load_split(split, self.train_mean, self.train_stddev)
