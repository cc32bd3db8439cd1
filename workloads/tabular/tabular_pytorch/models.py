"""tabular's model in PyTorch: the common MLP, 32 -> 256 -> 256 -> 8."""

from __future__ import annotations

from algoperf.workloads.common.mlp_pytorch import MLP
from algoperf.workloads.tabular.workload import HIDDEN_SIZES, INPUT_SHAPE, NUM_CLASSES


class TabularMLP(MLP):
    """``net.layer1`` (32 -> 256), ``net.layer2`` (256 -> 256), ``net.layer3`` (256 -> 8)."""

    def __init__(self) -> None:
        super().__init__(INPUT_SHAPE[0], HIDDEN_SIZES, "relu", NUM_CLASSES)
