"""MNIST's model in flax: AlgoPerf's MLP, 784 -> 128 (sigmoid) -> 10."""

from __future__ import annotations

from collections.abc import Sequence

from algoperf.workloads.common.mlp_jax import MLP
from algoperf.workloads.mnist.workload import HIDDEN_SIZES, NUM_CLASSES


class MnistMLP(MLP):
    """``Dense_0`` (784 -> 128), ``Dense_1`` (128 -> 10)."""

    hidden_sizes: Sequence[int] = HIDDEN_SIZES
    activation: str = "sigmoid"
    num_classes: int = NUM_CLASSES
