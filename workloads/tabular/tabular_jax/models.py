"""tabular's model in flax: the common MLP, 32 -> 256 -> 256 -> 8."""

from __future__ import annotations

from collections.abc import Sequence

from algoperf.workloads.common.mlp_jax import MLP
from algoperf.workloads.tabular.workload import HIDDEN_SIZES, NUM_CLASSES


class TabularMLP(MLP):
    """``Dense_0`` (32 -> 256), ``Dense_1`` (256 -> 256), ``Dense_2`` (256 -> 8)."""

    hidden_sizes: Sequence[int] = HIDDEN_SIZES
    activation: str = "relu"
    num_classes: int = NUM_CLASSES
