"""MNIST's model in PyTorch: AlgoPerf's MLP, 784 -> 128 (sigmoid) -> 10."""

from __future__ import annotations

import math

from algoperf.workloads.common.mlp_pytorch import MLP
from algoperf.workloads.mnist.workload import HIDDEN_SIZES, INPUT_SHAPE, NUM_CLASSES


class MnistMLP(MLP):
    """``net.layer1`` (784 -> 128), ``net.layer2`` (128 -> 10)."""

    def __init__(self) -> None:
        super().__init__(math.prod(INPUT_SHAPE), HIDDEN_SIZES, "sigmoid", NUM_CLASSES)
