"""digits' model in flax: the common MLP, 64 -> 256 -> 256 -> 10."""

from __future__ import annotations

from collections.abc import Sequence

from algoperf.workloads.common.mlp_jax import MLP
from algoperf.workloads.digits.workload import HIDDEN_SIZES, NUM_CLASSES


class DigitsMLP(MLP):
    """``Dense_0`` (64 -> 256), ``Dense_1`` (256 -> 256), ``Dense_2`` (256 -> 10)."""

    hidden_sizes: Sequence[int] = HIDDEN_SIZES
    activation: str = "relu"
    num_classes: int = NUM_CLASSES
