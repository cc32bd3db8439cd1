"""The speech workloads' metrics, framework-free: greedy CTC decoding and word error rate.

AlgoPerf's ``wer`` is a corpus WER: the word-level Levenshtein distances of every utterance of
a split summed, over the number of reference words summed. Hypotheses come from greedy CTC
decoding (per frame the most likely token; repeats collapsed, then blanks, id 0, dropped;
padded frames ignored); hypotheses and references are SentencePiece-detokenised first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLANK = 0


def greedy_decode(frame_ids: np.ndarray, paddings: np.ndarray) -> list[list[int]]:
    """The token ids of each row of per-frame argmax ids (batch, frames): padded frames
    dropped, runs of one id collapsed to one, blanks dropped."""
    decoded = []
    for ids, padding in zip(np.asarray(frame_ids), np.asarray(paddings), strict=True):
        ids = ids[padding == 0]
        if ids.size:
            ids = ids[np.concatenate([[True], ids[1:] != ids[:-1]])]
        decoded.append([int(i) for i in ids if i != BLANK])
    return decoded


def word_edit_distance(hypothesis: Sequence[str], reference: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions and
    deletions each cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (hyp_word != ref_word)))
        previous = current
    return previous[-1]


def word_errors(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[int, int]:
    """(summed word edit distance, summed reference word count) over utterance pairs."""
    errors = words = 0
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        reference_words = reference.split()
        errors += word_edit_distance(hypothesis.split(), reference_words)
        words += len(reference_words)
    return errors, words


def corpus_wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """AlgoPerf's WER of a split: summed word edits over summed reference words."""
    errors, words = word_errors(hypotheses, references)
    return errors / max(words, 1)
