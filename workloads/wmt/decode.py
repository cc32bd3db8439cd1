"""Beam search for wmt's translations, framework-free: the search runs in numpy on the host,
the model's steps in JAX or PyTorch.

AlgoPerf translates with the beam search of flax's WMT example (beam 4, length penalty
alpha 0.6, at most 256 positions): per batch row it keeps the ``beam_size`` best live
(unfinished) sequences and the ``beam_size`` best finished ones. Each step extends the live
sequences by one token; of the ``2 * beam_size`` best extensions by log-probability, those
ending in ``</s>`` become finished candidates scored by log-probability over
``((5 + length) / 6) ** alpha`` and the others the new live sequences. The search stops at
the length limit or once, for every row, the worst finished score beats the best live
log-probability under the limit's penalty; a row with nothing finished returns its live
sequences. The rules, the -1e7 'infinity' and the tie-breaking (the lower index first, as
``lax.top_k``) are AlgoPerf's, so the same model gives the same translations; the loop is
written here, not taken from a library, because that bit-exact behaviour is what BLEU
targets were set with.

A framework supplies one function, ``step(ids, live_logprobs, rows)``: reorder its decoding
cache to the flat ``rows`` (batch * beam; which live sequence each slot now continues),
feed ``ids`` (batch * beam,), and return the ``2 * beam_size`` best continuations per batch
row over all beams and tokens of ``log_softmax(logits) + live_logprobs`` as (values, beam
indices, token ids), each (batch, 2 * beam_size), best first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EOS_ID = 2
BEAM_SIZE = 4
ALPHA = 0.6
MAX_DECODE_LENGTH = 256
NEG_INF = np.float32(-1.0e7)

Step = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def length_penalty(length: int | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """GNMT's penalty ((5 + length) / 6) ** alpha, float32."""
    return np.power((np.float32(5.0) + np.float32(length)) / np.float32(6.0),
                    np.float32(alpha)).astype(np.float32)


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, largest first, ties by lower index."""
    return np.argsort(-values, axis=1, kind="stable")[:, :k]


def _take(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``array[b, indices[b, j]]`` for (batch, n, ...) arrays and (batch, k) indices."""
    return np.take_along_axis(array, indices.reshape(*indices.shape,
                                                     *[1] * (array.ndim - 2)), axis=1)


def beam_search(step: Step, batch_size: int, beam_size: int = BEAM_SIZE,
                alpha: float = ALPHA, eos_id: int = EOS_ID,
                max_decode_length: int = MAX_DECODE_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Sequences (batch, beam, max_decode_length) and scores (batch, beam), best beam last;
    position 0 of every sequence is the start token 0, as AlgoPerf returns them."""
    live_logprobs = np.tile(np.array([0.0] + [NEG_INF] * (beam_size - 1), np.float32),
                            (batch_size, 1))
    live_seqs = np.zeros((batch_size, beam_size, max_decode_length), np.int32)
    finished_scores = np.full((batch_size, beam_size), NEG_INF, np.float32)
    finished_seqs = np.zeros_like(live_seqs)
    finished_flags = np.zeros((batch_size, beam_size), bool)
    rows = np.arange(batch_size * beam_size)
    worst_penalty = length_penalty(max_decode_length, alpha)
    for index in range(max_decode_length - 1):
        best_live = live_logprobs[:, -1:] / worst_penalty
        worst_finished = np.where(finished_flags,
                                  finished_scores.min(axis=1, keepdims=True), NEG_INF)
        if np.all(worst_finished > best_live):
            break
        values, beams, tokens = step(live_seqs[:, :, index].reshape(-1), live_logprobs, rows)
        values = np.asarray(values, np.float32)
        candidates = _take(live_seqs, np.asarray(beams)).copy()
        candidates[:, :, index + 1] = tokens
        finishing = np.asarray(tokens) == eos_id
        # Live: the best beam_size candidates not ending here, worst first.
        alive_logprobs = values + finishing * NEG_INF
        alive = top_k(alive_logprobs, beam_size)[:, ::-1]
        live_seqs = _take(candidates, alive)
        live_logprobs = _take(alive_logprobs, alive)
        rows = (np.arange(batch_size)[:, None] * beam_size + _take(beams, alive)).reshape(-1)
        # Finished: the best beam_size of the old ones and the candidates ending here.
        scores = values / length_penalty(index + 1, alpha) + (~finishing) * NEG_INF
        all_seqs = np.concatenate([finished_seqs, candidates], axis=1)
        all_scores = np.concatenate([finished_scores, scores], axis=1)
        all_flags = np.concatenate([finished_flags, finishing], axis=1)
        best = top_k(all_scores, beam_size)[:, ::-1]
        finished_seqs, finished_scores = _take(all_seqs, best), _take(all_scores, best)
        finished_flags = _take(all_flags, best)
    any_finished = finished_flags.any(axis=1)
    seqs = np.where(any_finished[:, None, None], finished_seqs, live_seqs)
    scores = np.where(any_finished[:, None], finished_scores, live_logprobs)
    return seqs, scores


def best_translations(step: Step, batch_size: int, max_decode_length: int = MAX_DECODE_LENGTH,
                      **options) -> np.ndarray:
    """The best beam of each row without its start token: (batch, max_decode_length - 1)."""
    seqs, _ = beam_search(step, batch_size, max_decode_length=max_decode_length, **options)
    return seqs[:, -1, 1:]


def until_eos(ids: np.ndarray, eos_id: int = EOS_ID) -> np.ndarray:
    """The ids up to and including the first ``</s>``; with none, only the first id (as
    AlgoPerf cuts them: ``ids[:argmax(ids == eos) + 1]``)."""
    ids = np.asarray(ids)
    return ids[:int(np.argmax(ids == eos_id)) + 1].astype(np.int32)
