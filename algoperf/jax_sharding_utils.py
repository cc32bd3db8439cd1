"""JAX data parallelism as in AlgoPerf v0.6: a 1-D mesh over all devices, axis ``'batch'``.

Parameters, model state and optimizer state are replicated on every device; batches are split
along their leading (batch) dimension. Workloads and submissions pass these shardings to
``jax.jit`` (``in_shardings``/``out_shardings``) and ``jax.device_put``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


@functools.cache
def get_mesh() -> Mesh:
    """The 1-D mesh over ``jax.devices()`` with the single axis ``'batch'``."""
    return Mesh(jax.devices(), (BATCH_AXIS,))


def get_replicate_sharding() -> NamedSharding:
    """A sharding that keeps a full copy of an array on every device."""
    return NamedSharding(get_mesh(), PartitionSpec())


def get_batch_dim_sharding() -> NamedSharding:
    """A sharding that splits an array's first axis evenly across the devices."""
    return NamedSharding(get_mesh(), PartitionSpec(BATCH_AXIS))


def shard_along_batch_dim(x: Any) -> Any:
    """Puts every leaf of the pytree ``x`` on the devices, split along its first axis.

    The first axis of each leaf must be divisible by the number of devices.
    """
    sharding = get_batch_dim_sharding()
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding), x)


def replicate(x: Any) -> Any:
    """Puts a full copy of every leaf of the pytree ``x`` on every device."""
    sharding = get_replicate_sharding()
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding), x)


def display_shard_info(x: jax.Array) -> None:
    """Prints which device holds which slice of ``x`` (a debugging aid)."""
    for shard in x.addressable_shards:
        print(f"shard.device: {shard.device}, index: {shard.index}, "
              f"replica_id: {shard.replica_id}.")
