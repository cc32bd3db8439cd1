"""The per-call-rate JAX dropout (``workloads/common/dropout_jax.py``) is flax's ``nn.Dropout``
for a Python rate and also takes a traced one, as AlgoPerf's JAX baselines pass it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 5, 4)), jnp.float32)
KEY = {"dropout": jax.random.PRNGKey(3)}


class _Flax(nn.Module):
    rate: float
    broadcast_dims: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(2):
            x = nn.Dropout(self.rate, self.broadcast_dims, deterministic=False)(x)
        return x


class _Ours(nn.Module):
    broadcast_dims: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array, rate: float | jax.Array) -> jax.Array:
        for _ in range(2):
            x = Dropout(self.broadcast_dims)(x, rate, deterministic=False)
        return x


@pytest.mark.parametrize("broadcast_dims", [(), (1, 2)])
@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_a_python_rate_gives_flaxs_masks(rate: float, broadcast_dims: tuple[int, ...]) -> None:
    expected = _Flax(rate, broadcast_dims).apply({}, X, rngs=KEY)
    got = _Ours(broadcast_dims).apply({}, X, rate, rngs=KEY)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_a_traced_rate_computes_the_same_dropout(rate: float) -> None:
    model = _Ours((1, 2))
    traced = jax.jit(lambda r: model.apply({}, X, r, rngs=KEY))(jnp.float32(rate))
    np.testing.assert_allclose(traced, model.apply({}, X, rate, rngs=KEY), rtol=1e-6)


def test_deterministic_returns_the_input_at_a_traced_rate() -> None:
    apply = jax.jit(lambda r: Dropout().apply({}, X, r, deterministic=True))
    np.testing.assert_array_equal(apply(jnp.float32(0.5)), X)
