"""wmt's numpy input pipeline: the length filter, sequence packing for training, padded eval.

As AlgoPerf's pipeline: sentence pairs whose longer side exceeds ``max_length`` tokens (256;
``</s>`` counted) are dropped from every split. Training examples are packed: consecutive
pairs of the shuffled stream are concatenated into rows of ``max_length`` tokens per side,
each pair starting a new row when either side would overflow; each side gets ``_position``
(position within its pair) and ``_segmentation`` (1, 2, ... per pair of the row, 0 on
padding) rows, which the model turns into block-diagonal attention masks and positional
embeddings. Packing runs over groups of ``PACK_GROUP`` consecutive pairs, the last row of a
group flushed with whatever it holds, as AlgoPerf packs each padded batch of 256 pairs.
Evaluation examples are not packed: each side is padded with zeros to ``max_length``.

Every step here is written out in numpy because AlgoPerf's is TensorFlow ops (tf.data's
packing) that this project does not depend on; the packing order is AlgoPerf's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

PACK_GROUP = 256  # pairs packed together (AlgoPerf: the padded batch packing runs over)
PACKED_KEYS = ("inputs", "inputs_position", "inputs_segmentation",
               "targets", "targets_position", "targets_segmentation")

Ragged = tuple[np.ndarray, np.ndarray]  # (ids, offsets): sentence i is ids[offsets[i]:...]


def lengths(side: Ragged) -> np.ndarray:
    return np.diff(np.asarray(side[1]))


def kept_pairs(inputs: Ragged, targets: Ragged, max_length: int) -> np.ndarray:
    """Indices of the pairs whose longer side has at most ``max_length`` tokens."""
    return np.flatnonzero(np.maximum(lengths(inputs), lengths(targets)) <= max_length)


def sentence(side: Ragged, index: int) -> np.ndarray:
    ids, offsets = side
    return np.asarray(ids[offsets[index]:offsets[index + 1]], np.int32)


def padded(side: Ragged, indices: np.ndarray, max_length: int) -> np.ndarray:
    """The sentences ``indices`` of one side, zero-padded (and cut) to (N, max_length)."""
    out = np.zeros((len(indices), max_length), np.int32)
    for row, index in enumerate(indices):
        ids = sentence(side, int(index))[:max_length]
        out[row, :len(ids)] = ids
    return out


def pack(pairs: list[tuple[np.ndarray, np.ndarray]], max_length: int) -> dict[str, np.ndarray]:
    """Packs (inputs, targets) id pairs, in order, into rows of ``max_length`` tokens per side:
    a pair goes into the current row if both sides fit, else it starts the next one. Returns
    the ``PACKED_KEYS`` arrays, (rows, max_length) int32 each. Rows end at 0 ids."""
    rows: list[list[tuple[np.ndarray, np.ndarray]]] = [[]]
    used = [0, 0]
    for pair in pairs:
        # AlgoPerf's packing keeps the first count_nonzero(ids) ids of a (cut) sentence: a
        # sentence holding <unk> (id 0, also padding) loses as many ids from its end.
        pair = tuple(ids[:max_length][:np.count_nonzero(ids[:max_length])] for ids in pair)
        if rows[-1] and any(used[i] + len(pair[i]) > max_length for i in range(2)):
            rows.append([])
            used = [0, 0]
        rows[-1].append(pair)
        used = [used[i] + len(pair[i]) for i in range(2)]
    out = {key: np.zeros((len(rows), max_length), np.int32) for key in PACKED_KEYS}
    for row, members in enumerate(rows):
        for side_index, side in enumerate(("inputs", "targets")):
            start = 0
            for segment, pair in enumerate(members, start=1):
                ids = pair[side_index]
                span = slice(start, start + len(ids))
                out[side][row, span] = ids
                out[f"{side}_position"][row, span] = np.arange(len(ids))
                out[f"{side}_segmentation"][row, span] = segment
                start += len(ids)
    for side in ("inputs", "targets"):  # AlgoPerf's segment ids are 0 wherever an id is 0
        out[f"{side}_segmentation"] *= out[side] != 0
    return out


def shuffled_pairs(num_pairs: int, seed: int) -> Iterator[int]:
    """Endless pair indices: one seeded permutation per epoch, epochs back to back."""
    random_state = np.random.RandomState(seed)
    while True:
        yield from random_state.permutation(num_pairs)


def packed_rows(inputs: Ragged, targets: Ragged, order: Iterator[int],
                max_length: int) -> Iterator[dict[str, np.ndarray]]:
    """Packed rows, one dict of ``PACKED_KEYS`` arrays (max_length,) per row, from the pairs
    ``order`` gives, packed ``PACK_GROUP`` pairs at a time."""
    while True:
        group = list(itertools.islice(order, PACK_GROUP))
        if not group:
            return
        packed = pack([(sentence(inputs, i), sentence(targets, i)) for i in group], max_length)
        for row in range(len(packed["inputs"])):
            yield {key: value[row] for key, value in packed.items()}


def train_batches(inputs: Ragged, targets: Ragged, kept: np.ndarray, batch_size: int,
                  seed: int, max_length: int) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches of ``batch_size`` packed rows from the pairs ``kept``, shuffled by
    ``seed``: ``PACKED_KEYS`` (batch_size, max_length) int32 each."""
    order = (int(kept[i]) for i in shuffled_pairs(len(kept), seed))
    rows = packed_rows(inputs, targets, order, max_length)
    while True:
        batch = list(itertools.islice(rows, batch_size))
        yield {key: np.stack([row[key] for row in batch]) for key in PACKED_KEYS}
