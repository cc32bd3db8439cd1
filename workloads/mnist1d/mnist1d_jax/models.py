"""mnist1d's model in flax: ``Conv_0..2`` (1 -> 25 -> 25 -> 25 channels) and ``Dense_0``."""

from __future__ import annotations

import jax
from flax import linen as nn

from algoperf.workloads.mnist1d.workload import CHANNELS, KERNELS, NUM_CLASSES, PADDING, STRIDE


class Mnist1dCNN(nn.Module):
    """Strided 1-D convolutions with ReLU on (B, 40, 1) signals, then class logits."""

    channels: int = CHANNELS
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for kernel in KERNELS:
            x = nn.relu(nn.Conv(self.channels, (kernel,), strides=(STRIDE,),
                                padding=((PADDING, PADDING),))(x))
        return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))
