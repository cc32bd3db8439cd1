"""A flax model's jitted ``apply``, shared by the JAX workloads whose model takes
``(inputs, train, dropout_rate)``."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
from flax import linen as nn


@functools.cache
def jitted_apply(model: nn.Module, static_rate: bool) -> Callable:
    """``apply(params, inputs, rngs, train, dropout_rate)`` jitted, one per configuration and
    process: one program per input shape, also when ``model_fn`` runs outside a jitted step
    (op by op, the model's many small operations would each dispatch on their own). ``train``
    is static; ``dropout_rate`` is static when ``static_rate`` (a Python number: no mask at
    rate 0) and traced otherwise, as AlgoPerf's JAX baselines pass it from inside their jitted
    step."""
    def apply(params, inputs, rngs, train, dropout_rate):
        return model.apply({"params": params}, inputs, train=train, dropout_rate=dropout_rate,
                           rngs=rngs)

    return jax.jit(apply, static_argnums=(3, 4) if static_rate else (3,))
