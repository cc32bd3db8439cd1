"""WMT's BLEU: corpus BLEU of detokenised translations against one reference each, by
sacrebleu.

AlgoPerf scores ``bleu`` with its own port of sacrebleu 1.3.1's ``corpus_bleu`` (13a
tokenisation, case-sensitive, 'exp' smoothing, 4-grams, one reference stream; under PyTorch
DDP its n-gram statistics are summed over the processes before the score). Here sacrebleu
itself computes it with those settings; on recorded translations (tests/test_wmt_bleu.py, the
scores AlgoPerf's port gave for them) the two agree to the last digit. ``statistics`` and
``score_from_statistics`` split the computation where a distributed evaluation sums counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sacrebleu

TOKENIZE = "13a"
SMOOTH_METHOD = "exp"


def statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """BLEU's sufficient statistics of a corpus, summable over shards: hypothesis length,
    reference length, then matching and total n-grams for n = 1..4 (int64, 10 values)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} translations for {len(references)} references")
    if not hypotheses:
        return np.zeros(10, np.int64)
    bleu = sacrebleu.BLEU(tokenize=TOKENIZE, smooth_method=SMOOTH_METHOD, lowercase=False)
    score = bleu.corpus_score(list(hypotheses), [list(references)])
    return np.asarray([score.sys_len, score.ref_len, *score.counts, *score.totals], np.int64)


def score_from_statistics(stats: np.ndarray) -> float:
    """Corpus BLEU (0-100) of summed ``statistics``."""
    sys_len, ref_len, *counts = (int(x) for x in np.asarray(stats))
    return float(sacrebleu.BLEU.compute_bleu(counts[:4], counts[4:], sys_len, ref_len,
                                             smooth_method=SMOOTH_METHOD).score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of ``hypotheses`` against one reference each."""
    return score_from_statistics(statistics(hypotheses, references))
