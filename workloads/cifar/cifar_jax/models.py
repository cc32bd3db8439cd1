"""CIFAR's model in flax: ResNet-18 with a CIFAR stem, with batch norm (AlgoPerf's).

Parameter names follow AlgoPerf's flax model: ``Conv_init``, ``BatchNorm_init``,
``ResNetBlock_0..7`` (``Conv_0/1``, ``BatchNorm_0/1``, and ``Conv_proj``/``BatchNorm_proj`` where
a block changes shape), ``Dense_0``. 11,173,962 parameters plus 9,600 batch-norm statistics.
Batch norm: momentum 0.9, epsilon 1e-5; the second norm of each block starts with zero scale;
the classifier kernel starts as N(0, 0.01^2).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn


class ResNetBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (projected when the
    shape changes)."""

    filters: int
    strides: tuple[int, int]
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False)
        norm = functools.partial(nn.BatchNorm, use_running_average=not self.train,
                                 momentum=0.9, epsilon=1e-5)
        y = nn.relu(norm()(conv(self.filters, (3, 3), self.strides)(x)))
        y = norm(scale_init=nn.initializers.zeros)(conv(self.filters, (3, 3))(y))
        if x.shape != y.shape or self.strides != (1, 1):
            x = conv(self.filters, (1, 1), self.strides, name="Conv_proj")(x)
            x = norm(name="BatchNorm_proj")(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """3x3 stem with 64 filters, four stages of two blocks (64, 128, 256, 512 filters; the
    last three halve the resolution), global average pooling, a linear classifier."""

    num_classes: int = 10
    stage_sizes: Sequence[int] = (2, 2, 2, 2)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Conv(64, (3, 3), (1, 1), padding=[(1, 1), (1, 1)], use_bias=False,
                    name="Conv_init")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         name="BatchNorm_init")(x)
        x = nn.relu(x)
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
                x = ResNetBlock(64 * 2**stage, strides, train)(x)
        x = jnp.mean(x, axis=(1, 2))  # the 4x4 average pool of the 32x32 model
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01))(x)
