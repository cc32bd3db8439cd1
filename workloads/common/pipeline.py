"""The numpy input pipeline shared by the JAX and PyTorch workloads.

Batches are dicts of numpy arrays ``{'inputs', 'targets', 'weights'}`` cut from in-memory
arrays. Training batches come from an infinite stream of seeded per-epoch permutations, so one
seed yields the same batches in both frameworks; evaluation batches walk a split in order and
pad its last batch to the global batch size, marking real rows with weight 1 and padding rows
with weight 0 (AlgoPerf's ``shard_and_maybe_pad_np`` convention). Frameworks only convert the
arrays to their own tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from algoperf.errors import UserError

Batch = dict[str, np.ndarray]


def seed_from_rng(rng: Any) -> int:
    """The shuffle seed of a data rng: its first uint32 word (AlgoPerf seeds with ``rng[0]``).

    Accepts the numpy emulation of a threefry key, a raw JAX ``uint32[2]`` key, or a typed
    JAX key (``jax.random.key``), whose words are read with ``jax.random.key_data``.
    """
    if type(rng).__module__.startswith("jax"):  # numpy keys never import JAX
        import jax

        if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.key_data(rng)
    words = np.asarray(rng).reshape(-1)
    # Keys of AlgoPerf's own PyTorch emulation are non-negative int32 words.
    return int(words[0].astype(np.uint32))


def _num_examples(arrays: Mapping[str, np.ndarray]) -> int:
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"arrays of one split must have one length, got {sorted(sizes)}")
    return sizes.pop()


def train_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, seed: int
) -> Iterator[Batch]:
    """Endless shuffled batches of ``batch_size`` rows; reshuffled every epoch.

    Each epoch is one permutation of all examples drawn from a ``RandomState(seed)`` (whose
    stream numpy keeps stable across versions); the rows left over after the last full batch
    of an epoch are dropped. Every batch has ``weights`` of ones.
    """
    num_examples = _num_examples(arrays)
    if not 0 < batch_size <= num_examples:
        raise UserError(
            f"training batch size {batch_size} must be between 1 and the {num_examples} "
            "training examples; return a smaller one from get_batch_size."
        )
    return _shuffled_batches(arrays, num_examples, batch_size, np.random.RandomState(seed))


def _shuffled_batches(arrays, num_examples, batch_size, random_state) -> Iterator[Batch]:
    while True:
        order = random_state.permutation(num_examples)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            batch = {key: value[rows] for key, value in arrays.items()}
            batch["weights"] = np.ones(batch_size, np.float32)
            yield batch


def pad_batch(batch: Mapping[str, np.ndarray], batch_size: int) -> Batch:
    """``batch`` padded with zero rows to ``batch_size``, with ``weights`` 1 real / 0 padding."""
    num_real = _num_examples(batch)
    if num_real > batch_size:
        raise ValueError(f"a batch of {num_real} rows cannot be padded to {batch_size}")
    padded = {}
    for key, value in batch.items():
        pad_rows = np.zeros((batch_size - num_real, *value.shape[1:]), value.dtype)
        padded[key] = np.concatenate([value, pad_rows])
    padded["weights"] = (np.arange(batch_size) < num_real).astype(np.float32)
    return padded


def eval_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, repeat: bool = True
) -> Iterator[Batch]:
    """The split in order, in batches of ``batch_size``, the last one padded; forever if ``repeat``.

    One pass yields ``ceil(num_examples / batch_size)`` batches whose weights sum to the
    number of examples, so an evaluation that takes that many batches from a cached iterator
    sees every example exactly once, every time.
    """
    num_examples = _num_examples(arrays)
    if batch_size <= 0:
        raise ValueError(f"eval batch size must be positive, got {batch_size}")
    return _padded_batches(arrays, num_examples, batch_size, repeat)


def _padded_batches(arrays, num_examples, batch_size, repeat) -> Iterator[Batch]:
    while True:
        for start in range(0, num_examples, batch_size):
            rows = {key: value[start:start + batch_size] for key, value in arrays.items()}
            yield pad_batch(rows, batch_size)
        if not repeat:
            return
