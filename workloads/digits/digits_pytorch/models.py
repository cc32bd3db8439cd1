"""digits' model in PyTorch: the common MLP, 64 -> 256 -> 256 -> 10."""

from __future__ import annotations

import math

from algoperf.workloads.common.mlp_pytorch import MLP
from algoperf.workloads.digits.workload import HIDDEN_SIZES, INPUT_SHAPE, NUM_CLASSES


class DigitsMLP(MLP):
    """``net.layer1`` (64 -> 256), ``net.layer2`` (256 -> 256), ``net.layer3`` (256 -> 10)."""

    def __init__(self, activation: str = "relu") -> None:
        super().__init__(math.prod(INPUT_SHAPE), HIDDEN_SIZES, activation, NUM_CLASSES)
