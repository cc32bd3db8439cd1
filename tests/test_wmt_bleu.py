"""WMT's BLEU (``workloads.wmt.metrics``, sacrebleu) against AlgoPerf's own port of sacrebleu,
whose scores on these translations are recorded in tests/data/wmt_bleu_algoperf.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algoperf.workloads.wmt import metrics

RECORDED = json.loads((Path(__file__).parent / "data" / "wmt_bleu_algoperf.json").read_text())
HYPOTHESES, REFERENCES = RECORDED["hypotheses"], RECORDED["references"]
CASES = {"all": (HYPOTHESES, REFERENCES), "first_three": (HYPOTHESES[:3], REFERENCES[:3]),
         "identical": (REFERENCES, REFERENCES), "one_word": (["the"], ["the cat"])}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_bleu_is_algoperfs_port_to_the_last_digit(case):
    hypotheses, references = CASES[case]
    assert metrics.corpus_bleu(hypotheses, references) == pytest.approx(
        RECORDED["algoperf_bleu"][case], rel=1e-12, abs=1e-12)


def test_statistics_summed_over_shards_give_the_corpus_score():
    """As a distributed evaluation sums each process's counts (AlgoPerf's DDP all-reduce)."""
    shards = [(HYPOTHESES[:4], REFERENCES[:4]), (HYPOTHESES[4:], REFERENCES[4:]), ([], [])]
    summed = sum(metrics.statistics(h, r) for h, r in shards)
    assert metrics.score_from_statistics(summed) == pytest.approx(
        RECORDED["algoperf_bleu"]["all"], rel=1e-12)


def test_bleu_is_case_sensitive_and_penalises_short_translations():
    reference = ["The house is small and old."]
    assert metrics.corpus_bleu(["the house is small and old."], reference) < 100
    assert metrics.corpus_bleu(["The house is small"], reference) < \
        metrics.corpus_bleu(["The house is small and old"], reference)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="2 translations for 1 references"):
        metrics.statistics(["a", "b"], ["a"])
