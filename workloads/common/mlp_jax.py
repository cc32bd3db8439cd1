"""The multi-layer perceptron of the MLP dev workloads, in flax (AlgoPerf's MNIST model).

Parameter tree ``{'Dense_0': {'kernel', 'bias'}, 'Dense_1': ...}`` with flax's default
initialisation (LeCun-normal kernels, zero biases).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import linen as nn


class MLP(nn.Module):
    """Flattens the images, then hidden Dense layers with ``activation``, then class logits."""

    hidden_sizes: Sequence[int]
    activation: str  # a flax.linen activation: 'relu', 'sigmoid', 'silu', ...
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden_sizes:
            x = getattr(nn, self.activation)(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)
