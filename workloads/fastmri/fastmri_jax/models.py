"""fastmri's U-Net in flax linen: AlgoPerf's (from fastMRI's U-Net via init2winit).

Encoder: ``num_pool_layers`` conv blocks of ``num_channels`` doubling, each followed by a 2x2
average pool; a bottleneck block; a decoder of 2x2 stride-2 transposed-conv blocks, each
followed by the concatenation with its skip connection (reflect-padded by a row or column
where the sizes are odd) and a conv block; a 1x1 conv with bias to one channel. A conv block
is twice [3x3 conv, no bias -> instance norm (no affine, eps 1e-5) or, for
``use_layer_norm``, layer norm over H, W, C with a per-channel scale and bias -> LeakyReLU 0.2
or tanh -> channel dropout]; a transposed-conv block is [transposed conv, no bias -> instance
norm -> activation]. Layouts NHWC; the parameter tree is AlgoPerf's (``ConvBlock_<i>``,
``TransposeConvBlock_<i>``, ``Conv_0``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout


def _activation(use_tanh: bool):
    return nn.tanh if use_tanh else functools.partial(jax.nn.leaky_relu, negative_slope=0.2)


def _instance_norm(x: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """Normalised over H and W per example and channel (no scale or bias), as AlgoPerf
    computes it: the variance as the mean square less the squared mean, floored at 0. flax's
    ``nn.InstanceNorm`` computes the same function but its step took 6% longer on XLA:CPU."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    variance = jnp.maximum(0.0, jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True)
                           - jnp.square(mean))
    return (x - mean) / jnp.sqrt(variance + epsilon)


class ConvBlock(nn.Module):
    """Two [3x3 conv -> norm -> activation -> channel dropout]."""

    out_channels: int
    use_tanh: bool
    use_layer_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, dropout_rate: float | jax.Array
                 ) -> jax.Array:
        for _ in range(2):
            x = nn.Conv(self.out_channels, kernel_size=(3, 3), strides=(1, 1),
                        use_bias=False)(x)
            if self.use_layer_norm:
                x = nn.LayerNorm(reduction_axes=(1, 2, 3))(x)
            else:
                x = _instance_norm(x)
            x = _activation(self.use_tanh)(x)
            x = Dropout(broadcast_dims=(1, 2))(x, dropout_rate, deterministic=not train)
        return x


class TransposeConvBlock(nn.Module):
    """[2x2 stride-2 transposed conv -> instance norm -> activation]."""

    out_channels: int
    use_tanh: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.ConvTranspose(self.out_channels, kernel_size=(2, 2), strides=(2, 2),
                             use_bias=False)(x)
        return _activation(self.use_tanh)(_instance_norm(x))


class UNet(nn.Module):
    """(N, H, W) images -> (N, H, W) reconstructions."""

    num_channels: int = 32
    num_pool_layers: int = 4
    use_tanh: bool = False
    use_layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True,
                 dropout_rate: float | jax.Array = 0.0) -> jax.Array:
        block = functools.partial(ConvBlock, use_tanh=self.use_tanh,
                                  use_layer_norm=self.use_layer_norm)
        channels = self.num_channels
        down = [block(channels)]
        for _ in range(self.num_pool_layers - 1):
            channels *= 2
            down.append(block(channels))
        bottleneck = block(channels * 2)
        up_transpose, up = [], []
        for _ in range(self.num_pool_layers):
            up_transpose.append(TransposeConvBlock(channels, self.use_tanh))
            up.append(block(channels))
            channels //= 2

        stack = []
        output = x[..., None]
        for layer in down:
            output = layer(output, train, dropout_rate)
            stack.append(output)
            output = nn.avg_pool(output, window_shape=(2, 2), strides=(2, 2))
        output = bottleneck(output, train, dropout_rate)
        for transpose, conv in zip(up_transpose, up, strict=True):
            skip = stack.pop()
            output = transpose(output)
            bottom = int(output.shape[1] != skip.shape[1])
            right = int(output.shape[2] != skip.shape[2])
            if bottom or right:
                output = jnp.pad(output, ((0, 0), (0, bottom), (0, right), (0, 0)),
                                 mode="reflect")
            output = conv(jnp.concatenate([output, skip], axis=-1), train, dropout_rate)
        return nn.Conv(1, kernel_size=(1, 1), strides=(1, 1))(output)[..., 0]
