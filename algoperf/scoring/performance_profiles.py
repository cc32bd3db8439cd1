"""Performance profiles and the benchmark score, on arrays of per-workload times.

``times[..., s, w]`` is submission ``s``'s time on workload ``w`` (inf: target missed, NaN: no
logs); leading axes are batches (the bootstrap uses one). The steps follow AlgoPerf's
``compute_performance_profiles`` (reference §4.3):

1. held-out variants: a variant counts only if its base workload has a finite time;
2. the 4x rule: a time above 4x the best submission's on that workload becomes inf;
3. held-out variants: a base workload counts only if its variant has a finite time;
4. ratios ``r = t / min_s t`` (where that is NaN, e.g. inf/inf, the time itself is kept);
5. ``rho(tau) = |{w : r_w <= tau}| / n`` on 100 points of tau in [1, 4];
6. score = trapezoid integral of rho over tau, divided by (4 - 1), in [0, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

MIN_TAU = 1.0
MAX_TAU = 4.0
NUM_POINTS = 100
MAX_RATIO = 4.0  # the 4x rule


def tau_grid(min_tau: float = MIN_TAU, max_tau: float = MAX_TAU,
             num_points: int = NUM_POINTS) -> np.ndarray:
    """The tau values at which profiles are evaluated (linear, endpoints included)."""
    return np.linspace(min_tau, max_tau, num=num_points)


def _missed(times: np.ndarray) -> np.ndarray:
    return np.isinf(times) | np.isnan(times)


def _best(times: np.ndarray) -> np.ndarray:
    """Per-workload minimum over submissions, ignoring NaN (all-NaN stays NaN)."""
    return np.fmin.reduce(times, axis=-2, keepdims=True)


def apply_four_x_rule(times: np.ndarray) -> np.ndarray:
    """Times more than 4x the fastest submission's on the same workload become inf."""
    return np.where(times > MAX_RATIO * _best(times), np.inf, times)


def apply_scoring_rules(times: np.ndarray, columns: Sequence[str], base_workloads: Sequence[str],
                        held_out: Mapping[str, str] | None = None) -> np.ndarray:
    """Steps 1-3: the 4x rule and held-out variants; returns the base workloads' times.

    ``columns`` names the last axis of ``times``; ``held_out`` maps each held-out variant
    (a column) to its base workload.
    """
    held_out = held_out or {}
    index = {name: k for k, name in enumerate(columns)}
    times = np.array(times, dtype=np.float64, copy=True)
    for variant, base in held_out.items():
        v, b = index[variant], index[base]
        times[..., v] = np.where(_missed(times[..., b]), np.inf, times[..., v])
    times = apply_four_x_rule(times)
    for variant, base in held_out.items():
        v, b = index[variant], index[base]
        times[..., b] = np.where(_missed(times[..., v]), np.inf, times[..., b])
    return times[..., [index[w] for w in base_workloads]]


def performance_ratios(times: np.ndarray) -> np.ndarray:
    """Step 4: each time over the best time on its workload."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = times / _best(times)
    return np.where(np.isnan(ratios), times, ratios)


def performance_profile(ratios: np.ndarray, taus: np.ndarray, num_workloads: int) -> np.ndarray:
    """Step 5: ``rho[..., s, k]``, the fraction of the ``num_workloads`` workloads on which
    submission ``s`` is within ``taus[k]`` of the best (NaN and inf never count)."""
    within = ratios[..., None] <= taus  # (..., S, W, T)
    return within.sum(axis=-2) / num_workloads


def benchmark_score(profile: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Step 6: the normalised area under each profile."""
    return np.trapezoid(profile, x=taus, axis=-1) / (taus[-1] - taus[0])


def scores_from_ratios(ratios: np.ndarray, taus: np.ndarray, num_workloads: int) -> np.ndarray:
    """Steps 5 and 6 at once, without building the profiles (for the bootstrap).

    The trapezoid area is a weighted sum of rho at the grid points, and rho counts workloads,
    so each workload adds the trapezoid weights of the points from its first ``tau >= r``
    on. Equal to ``benchmark_score(performance_profile(...))`` up to rounding; workloads are
    summed in sorted order so that equal profiles give exactly equal scores.
    """
    spacing = np.diff(taus)
    weights = np.concatenate([spacing, [0.0]]) / 2 + np.concatenate([[0.0], spacing]) / 2
    tail_sums = np.concatenate([np.cumsum(weights[::-1])[::-1], [0.0]])  # index T: never
    tail_sums /= tail_sums[0]  # the total weight is max tau - min tau; a perfect score is 1
    first = np.sort(np.searchsorted(taus, ratios, side="left"), axis=-1)  # NaN, inf -> T
    return tail_sums[first].sum(axis=-1) / num_workloads


@dataclasses.dataclass(frozen=True)
class ProfileResult:
    """Everything steps 1-6 produce, for reports and plots."""

    taus: np.ndarray  # (T,)
    times: np.ndarray  # (..., S, W) after the 4x and held-out rules
    ratios: np.ndarray  # (..., S, W)
    profile: np.ndarray  # (..., S, T)
    scores: np.ndarray  # (..., S)


def score_times(times: np.ndarray, columns: Sequence[str], base_workloads: Sequence[str],
                held_out: Mapping[str, str] | None = None,
                taus: np.ndarray | None = None) -> ProfileResult:
    """Steps 1-6 on ``times[..., s, column]``; profiles divide by ``len(base_workloads)``."""
    taus = tau_grid() if taus is None else taus
    ruled = apply_scoring_rules(times, columns, base_workloads, held_out)
    ratios = performance_ratios(ruled)
    profile = performance_profile(ratios, taus, len(base_workloads))
    return ProfileResult(taus, ruled, ratios, profile, benchmark_score(profile, taus))
