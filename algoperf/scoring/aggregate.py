"""From trials to a submission's time per workload: best trial per study, median over studies.

External tuning: ``t_w = median_studies(time of the study's best trial)``; self-tuning has one
trial per study, so the same rule gives the median over studies. Infinite times take part in
the median, so with three studies two misses make the workload infinite (reference §4.1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from algoperf.scoring import diagnostics as dg
from algoperf.scoring.trials import ScoredTrial, best_trial


def median_over_studies(times: Sequence[float]) -> float:
    """``np.median`` of the per-study times (NaN without studies), as AlgoPerf takes it."""
    return float(np.median(times)) if len(times) else math.nan


def _fewest_evals_to_test_target(trials: Sequence[ScoredTrial]) -> float:
    reached = [t for t in trials if t.test.reached]
    if reached:
        return min(reached, key=lambda t: t.test.hit_index).test.time_to_target
    return math.nan if trials and trials[0].test.target is None else math.inf


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """One study of one workload: its trials and the best of them."""

    study: str
    trials: tuple[ScoredTrial, ...]
    best: ScoredTrial | None

    @property
    def time(self) -> float:
        return math.inf if self.best is None else self.best.time_to_target

    @property
    def test_time(self) -> float:
        """Test targets, reported only: the same fewest-evals rule applied to test hits."""
        return _fewest_evals_to_test_target(self.trials)


@dataclasses.dataclass(frozen=True)
class WorkloadResult:
    """A submission on one workload: its studies and the median of their times."""

    workload: str
    studies: tuple[StudyResult, ...]

    @property
    def study_times(self) -> list[float]:
        return [s.time for s in self.studies]

    @property
    def time(self) -> float:
        return median_over_studies(self.study_times)

    @property
    def test_time(self) -> float:
        return median_over_studies([s.test_time for s in self.studies])

    @property
    def trials(self) -> list[ScoredTrial]:
        return [t for s in self.studies for t in s.trials]


def aggregate_workloads(submission: str, trials: Sequence[ScoredTrial],
                        diag: dg.Diagnostics) -> dict[str, WorkloadResult]:
    """Groups a submission's trials by workload and study (trial order kept) and applies
    AlgoPerf's best-trial rule to each study."""
    grouped: dict[str, dict[str, list[ScoredTrial]]] = {}
    frameworks: dict[str, set[str]] = {}
    for trial in trials:
        workload = trial.trial.workload
        grouped.setdefault(workload, {}).setdefault(trial.trial.study, []).append(trial)
        frameworks.setdefault(workload, set()).add(trial.trial.framework)
    for workload, found in frameworks.items():
        if len(found) > 1:
            diag.warn(dg.INCONSISTENT, f"{submission}: {workload} has logs for "
                      f"{' and '.join(sorted(found))}; their trials are pooled per study")
    return {
        workload: WorkloadResult(workload, tuple(
            StudyResult(study, tuple(group), best_trial(group)) for study, group in studies.items()
        ))
        for workload, studies in sorted(grouped.items())
    }
