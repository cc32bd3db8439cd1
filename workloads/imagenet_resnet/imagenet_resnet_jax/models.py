"""ImageNet's ResNet-50 (v1.5) in flax, with batch norm: AlgoPerf's architecture and names.

Stem: 7x7 convolution of stride 2 (three pixels of padding on every side), batch norm, the
activation, 3x3 max pooling of stride 2 (one pixel of padding); four stages of 3, 4, 6 and 3
bottleneck blocks (widths 64, 128, 256, 512, four times wider outputs), the stride on the 3x3
convolution of each later stage's first block; global average pooling; a dense classifier.
Parameter names as AlgoPerf's flax model: ``Conv_init``, ``BatchNorm_init``,
``BottleneckResNetBlock_0..15`` (``Conv_0..2``, ``BatchNorm_0..2``, and
``Conv_proj``/``BatchNorm_proj`` where the block changes shape), ``Dense_0``; 25,557,032
parameters and 53,120 batch-norm statistics. Convolutions have no bias and flax's default
(LeCun-normal) kernels; batch norm has momentum 0.9 and epsilon 1e-5, scale 1 except each
block's last norm, which starts at ``bn_init_scale`` (0 in the base workload); the classifier
kernel starts as N(0, 0.01^2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn


class BottleneckResNetBlock(nn.Module):
    """1x1, 3x3 (strided) and 1x1 convolutions, each batch-normalised, with a residual
    connection (projected when the shape changes)."""

    filters: int
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]
    act: Callable[[jax.Array], jax.Array]
    strides: tuple[int, int] = (1, 1)
    bn_init_scale: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.act(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=nn.initializers.constant(self.bn_init_scale))(y)
        if x.shape != y.shape or self.strides != (1, 1):
            x = self.conv(self.filters * 4, (1, 1), self.strides, name="Conv_proj")(x)
            x = self.norm(name="BatchNorm_proj")(x)
        return self.act(x + y)


class ResNet50(nn.Module):
    """ResNet-50 for ``num_classes`` classes; ``act`` replaces every ReLU (the variants)."""

    num_classes: int = 1000
    act: Callable[[jax.Array], jax.Array] = nn.relu
    bn_init_scale: float = 0.0
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    num_filters: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, update_batch_norm: bool = True,
                 use_running_average_bn: bool | None = None) -> jax.Array:
        """Logits of NHWC images. Batch norm normalises with the batch's statistics unless
        ``use_running_average_bn`` (default: ``not update_batch_norm``, AlgoPerf's rule)."""
        if use_running_average_bn is None:
            use_running_average_bn = not update_batch_norm
        conv = functools.partial(nn.Conv, use_bias=False)
        norm = functools.partial(nn.BatchNorm, use_running_average=use_running_average_bn,
                                 momentum=0.9, epsilon=1e-5)
        x = conv(self.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
                 name="Conv_init")(x)
        x = self.act(norm(name="BatchNorm_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
                x = BottleneckResNetBlock(self.num_filters * 2**stage, conv, norm, self.act,
                                          strides, self.bn_init_scale)(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01))(x)
