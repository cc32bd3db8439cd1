"""The mnist1d development workload, framework-free part: sizes, constants and the model's shape.

Data: MNIST-1D generated locally by the ``mnist1d`` package (``algoperf.datasets.mnist1d``):
train 4,000 / validation 1,000 (the published test split) / test 1,000 signals of length 40,
already standardised by the generating procedure, one padded eval batch per split. Model: a
1-D CNN with the shape of the MNIST-1D paper's ``ConvBase``: three convolutions (kernels 5, 3,
3, each with stride 2 and padding 1, ReLU) of ``CHANNELS`` = 25 channels, 40 -> 19 -> 10 -> 5
positions, then a linear layer on the flattened features (position-major, as flax flattens),
5,210 parameters. Targets, budget, eval period and step hint come from the registry row.
"""

from __future__ import annotations

import numpy as np

from algoperf.datasets import mnist1d as mnist1d_data
from algoperf.workloads.common.classification import ImageClassificationWorkload

NUM_CLASSES = mnist1d_data.NUM_CLASSES
INPUT_SHAPE = (mnist1d_data.SIGNAL_LENGTH, 1)  # positions x channels
CHANNELS = 25
KERNELS = (5, 3, 3)
STRIDE = 2
PADDING = 1  # on both sides, for every kernel


def output_positions(length: int = INPUT_SHAPE[0]) -> int:
    """Positions left after the strided convolutions (40 -> 19 -> 10 -> 5)."""
    for kernel in KERNELS:
        length = (length + 2 * PADDING - kernel) // STRIDE + 1
    return length


class BaseMnist1dWorkload(ImageClassificationWorkload):
    """MNIST-1D, framework-free: the JAX and PyTorch ``Mnist1dWorkload`` classes build on it."""

    workload_name = "mnist1d"
    official_split_sizes = mnist1d_data.SPLIT_SIZES  # fixed: generated, the same everywhere
    num_classes = NUM_CLASSES
    input_shape = INPUT_SHAPE

    @property
    def eval_batch_size(self) -> int:
        return 1000  # one batch per evaluation split

    @property
    def train_mean(self) -> float:
        return 0.0  # the generating procedure standardises the signals

    @property
    def train_stddev(self) -> float:
        return 1.0

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        return mnist1d_data.load_split(split, data_dir)
