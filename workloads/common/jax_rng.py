"""JAX keys from the data and model rngs the runner hands to workloads."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_jax_key(rng: Any) -> jax.Array:
    """A JAX key from a JAX key or the numpy emulation of one (uint32 words of shape (2,))."""
    if isinstance(rng, jax.Array):
        return rng
    return jnp.asarray(np.asarray(rng).astype(np.uint32))
