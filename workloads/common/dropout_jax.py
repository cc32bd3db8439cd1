"""Dropout for flax models whose rate is a call argument, as AlgoPerf's ``model_fn`` takes it.

AlgoPerf's JAX baselines pass ``dropout_rate`` into their jitted train step, so inside the model
it is a traced value; flax's ``nn.Dropout`` needs it as a Python number (it branches on it).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn


class Dropout(nn.Module):
    """flax's ``nn.Dropout`` with the rate given per call, a Python number or a traced value.

    Named like flax's layer (``Dropout_<k>``), it draws the same key and the same Bernoulli
    mask, so a Python rate gives flax's output; a traced rate is computed the same way, without
    the Python shortcuts for rates 0 and 1.
    """

    broadcast_dims: Sequence[int] = ()

    @nn.compact
    def __call__(self, x: jax.Array, rate: float | jax.Array, deterministic: bool
                 ) -> jax.Array:
        if deterministic or (isinstance(rate, int | float) and rate == 0.0):
            return x
        if isinstance(rate, int | float) and rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - rate
        shape = [1 if dim in self.broadcast_dims else size for dim, size in enumerate(x.shape)]
        mask = jax.random.bernoulli(self.make_rng("dropout"), p=keep, shape=shape)
        return jax.lax.select(jnp.broadcast_to(mask, x.shape), x / keep, jnp.zeros_like(x))
