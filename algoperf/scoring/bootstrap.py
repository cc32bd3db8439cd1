"""How sure is a leaderboard? Bootstrap over studies (beyond AlgoPerf).

Studies are the independent repetitions of the tuning protocol, so they are what we resample:
each replicate redraws, for every submission and workload, as many studies as it has (with
replacement), takes the median of their times, and scores the whole leaderboard again. The
spread of a submission's replicate scores gives a percentile confidence interval; how often it
keeps its rank gives the probability that the rank holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from algoperf.scoring.performance_profiles import (
    apply_scoring_rules,
    performance_ratios,
    scores_from_ratios,
    tau_grid,
)

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95


def pad_study_times(study_times: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    """``study_times[s][w]`` (lists of per-study times) as an (S, W, K) array, NaN-padded."""
    depth = max((len(ts) for row in study_times for ts in row), default=0)
    out = np.full((len(study_times), len(study_times[0]) if study_times else 0, max(depth, 1)),
                  np.nan)
    for s, row in enumerate(study_times):
        for w, times in enumerate(row):
            out[s, w, :len(times)] = times
    return out


def resampled_medians(padded: np.ndarray, replicates: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(B, S, W) medians of studies drawn with replacement from each (s, w)'s own studies.

    Cells without studies stay NaN. The median matches ``np.median``: the mean of the two
    middle values for an even count (so inf if either is inf).
    """
    counts = (~np.isnan(padded)).sum(axis=-1)  # (S, W)
    depth = padded.shape[-1]
    draws = np.floor(rng.random((replicates, *padded.shape)) * np.maximum(counts, 1)[..., None])
    samples = np.take_along_axis(padded[None], draws.astype(np.intp), axis=-1)
    samples = np.where(np.arange(depth) < counts[..., None], samples, np.nan)
    samples.sort(axis=-1)  # NaN padding sorts last
    low = np.maximum((counts - 1) // 2, 0)[None, ..., None]
    high = (counts // 2)[None, ..., None]
    lo = np.take_along_axis(samples, np.broadcast_to(low, (*samples.shape[:-1], 1)), axis=-1)
    hi = np.take_along_axis(samples, np.broadcast_to(np.minimum(high, depth - 1),
                                                     (*samples.shape[:-1], 1)), axis=-1)
    medians = ((lo + hi) / 2)[..., 0]
    return np.where(counts[None] > 0, medians, np.nan)


def competition_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank 1 is the highest score; equal scores share the better rank (1, 1, 3)."""
    return 1 + (scores[..., None, :] > scores[..., :, None]).sum(axis=-1)


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Replicate scores and what they say about each submission."""

    scores: np.ndarray  # (B, S)
    ci_low: np.ndarray  # (S,)
    ci_high: np.ndarray  # (S,)
    rank_distribution: np.ndarray  # (S, S): [s, k] = P(submission s has rank k + 1)
    level: float

    def rank_probability(self, ranks: np.ndarray) -> np.ndarray:
        """P(each submission keeps the given rank) across replicates."""
        return self.rank_distribution[np.arange(len(ranks)), ranks - 1]


def bootstrap(study_times: Sequence[Sequence[Sequence[float]]], columns: Sequence[str],
              base_workloads: Sequence[str], held_out: Mapping[str, str] | None = None, *,
              replicates: int = DEFAULT_REPLICATES, seed: int = 0,
              level: float = DEFAULT_LEVEL) -> BootstrapResult:
    """Scores ``replicates`` resampled leaderboards; ``study_times[s][w]`` lists submission
    ``s``'s per-study times on ``columns[w]``. Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    medians = resampled_medians(pad_study_times(study_times), replicates, rng)
    ratios = performance_ratios(apply_scoring_rules(medians, columns, base_workloads, held_out))
    scores = scores_from_ratios(ratios, tau_grid(), len(base_workloads))  # (B, S)
    tail = (1.0 - level) / 2
    low, high = np.quantile(scores, [tail, 1.0 - tail], axis=0)
    ranks = competition_ranks(scores)  # (B, S)
    n = scores.shape[-1]
    distribution = np.stack([(ranks == k).mean(axis=0) for k in range(1, n + 1)], axis=-1)
    return BootstrapResult(scores, low, high, distribution, level)
