"""The speech workloads' numpy input pipeline: utterances read from the prepared layout
(``algoperf.datasets.librispeech``), padded into fixed-shape batches both frameworks read.

A batch is AlgoPerf's: ``inputs = (audio, audio_paddings)``, float32 (batch, audio_length),
audio at int16 scale right-padded with zeros and paddings 1 there; ``targets = (ids,
id_paddings)``, int32 ids right-padded with 0 to 256 and float32 paddings; ``weights`` 1 for
real rows, 0 for the rows padding the last eval batch (whose audio and target paddings are all
1, as AlgoPerf pads them). Training batches come from ``common.pipeline``'s seeded per-epoch
permutations of the utterances, so one seed gives both frameworks the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from algoperf.datasets import librispeech as librispeech_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline


def make_batch(directory: Path, split: str, ids: Sequence[str], rows: np.ndarray,
               weights: np.ndarray, audio_length: int,
               target_length: int = librispeech_data.MAX_TARGET_TOKENS) -> dict:
    """The padded batch of utterances ``rows`` (indices into ``ids``); rows of weight 0 are
    padding."""
    size = len(rows)
    audio = np.zeros((size, audio_length), np.float32)
    audio_paddings = np.ones((size, audio_length), np.float32)
    targets = np.zeros((size, target_length), np.int32)
    target_paddings = np.ones((size, target_length), np.float32)
    for row, (index, weight) in enumerate(zip(rows, weights, strict=True)):
        if weight == 0:
            continue
        samples, tokens = librispeech_data.read_utterance(directory, split, ids[index])
        if len(samples) > audio_length or len(tokens) > target_length:
            raise UserError(
                f"utterance {ids[index]} of {split} has {len(samples)} samples and "
                f"{len(tokens)} tokens; the workload takes at most {audio_length} and "
                f"{target_length}: prepare the data with AlgoPerf's length limits")
        audio[row, :len(samples)] = samples
        audio_paddings[row, :len(samples)] = 0.0
        targets[row, :len(tokens)] = tokens
        target_paddings[row, :len(tokens)] = 0.0
    return {"inputs": (audio, audio_paddings), "targets": (targets, target_paddings),
            "weights": np.asarray(weights, np.float32)}


def train_batches(directory: Path, ids: Sequence[str], batch_size: int, seed: int,
                  audio_length: int) -> Iterator[dict]:
    """Endless shuffled training batches (seeded; a new permutation every epoch)."""
    for chosen in pipeline.train_batches({"index": np.arange(len(ids))}, batch_size, seed):
        yield make_batch(directory, "train", ids, chosen["index"], chosen["weights"],
                         audio_length)


def eval_batches(directory: Path, split: str, ids: Sequence[str], batch_size: int,
                 audio_length: int, repeat: bool) -> Iterator[dict]:
    """The utterances ``ids`` of ``split`` in order, the last batch padded."""
    for chosen in pipeline.eval_batches({"index": np.arange(len(ids))}, batch_size, repeat):
        yield make_batch(directory, split, ids, chosen["index"], chosen["weights"],
                         audio_length)
