"""The result of scoring: the leaderboard, each submission's times, profiles and warnings.

A :class:`Report` is plain data. Renderers (``formats``), the summary CSV (``summary``), plots
(``plots``) and the JSON output all read it; ``to_dict`` is its JSON form, where a time that
is not finite (target missed) or absent (no logs) is ``null`` and ``status`` says which.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from algoperf.scoring.aggregate import WorkloadResult
from algoperf.scoring.diagnostics import ScoringWarning
from algoperf.scoring.protocol import WorkloadSet
from algoperf.scoring.speedups import Speedup
from algoperf.scoring.trials import ScoredTrial

REACHED = "reached"
NOT_REACHED = "not reached"
OVER_4X = "over 4x best"
VARIANT_MISSED = "held-out variant missed"
MISSING = "no logs"


def finite_or_none(value: float) -> float | None:
    """JSON has no inf or NaN: those become null."""
    return float(value) if value is not None and math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class SubmissionScore:
    """One leaderboard row and everything behind it."""

    name: str
    experiments: tuple[Path, ...]
    score: float
    rank: int
    profile: np.ndarray  # rho at each tau of the report
    workloads: dict[str, WorkloadResult]  # every workload with logs, scored or not
    scored_times: dict[str, float]  # base workloads, after the 4x and held-out rules
    ratios: dict[str, float]  # base workloads: scored time over the best submission's
    statuses: dict[str, str]  # every reported workload: what became of its time
    ci: tuple[float, float] | None = None
    rank_probability: float | None = None
    rank_distribution: tuple[float, ...] | None = None
    speedup: Speedup | None = None

    def time(self, workload: str) -> float:
        """Median over studies of the best trial's time-to-target (NaN: no logs)."""
        result = self.workloads.get(workload)
        return math.nan if result is None else result.time

    def status(self, workload: str) -> str:
        """REACHED, NOT_REACHED, OVER_4X, VARIANT_MISSED or MISSING."""
        return self.statuses.get(workload, MISSING)

    @property
    def workloads_reached(self) -> int:
        """Base workloads that count for the score (finite after the 4x/held-out rules)."""
        return sum(math.isfinite(t) for t in self.scored_times.values())


@dataclasses.dataclass(frozen=True)
class Report:
    """A scored leaderboard. ``submissions`` are in rank order."""

    rules: str
    ruleset: str
    workload_set: WorkloadSet
    taus: np.ndarray
    submissions: tuple[SubmissionScore, ...]
    warnings: tuple[ScoringWarning, ...]
    reference: str | None = None
    bootstrap_replicates: int = 0
    seed: int = 0
    level: float = 0.95
    leaderboard: str | None = None  # its label when one PATH held several leaderboards

    @property
    def workloads(self) -> tuple[str, ...]:
        """The workloads that divide the profile."""
        return self.workload_set.base

    @property
    def reported_workloads(self) -> list[str]:
        """Scored workloads first, then any other workload some submission has logs for."""
        extra = sorted({w for s in self.submissions for w in s.workloads} -
                       set(self.workload_set.columns))
        return [*self.workload_set.columns, *extra]

    def submission(self, name: str) -> SubmissionScore:
        for sub in self.submissions:
            if sub.name == name:
                return sub
        raise KeyError(name)

    @property
    def trials(self) -> list[ScoredTrial]:
        return [t for s in self.submissions for w in s.workloads.values() for t in w.trials]

    def to_dict(self) -> dict:
        """The report as JSON-ready data (see the module docstring for inf/NaN)."""
        return {
            "leaderboard": self.leaderboard,
            "rules": self.rules,
            "ruleset": self.ruleset,
            "workloads": list(self.workloads),
            "held_out": dict(self.workload_set.held_out),
            "dev_workloads": self.workload_set.dev,
            "tau": {"min": float(self.taus[0]), "max": float(self.taus[-1]),
                    "points": len(self.taus)},
            "bootstrap": {"replicates": self.bootstrap_replicates, "seed": self.seed,
                          "level": self.level},
            "reference": self.reference,
            "submissions": [self._submission_dict(s) for s in self.submissions],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def _submission_dict(self, sub: SubmissionScore) -> dict:
        workloads = {}
        for name in self.reported_workloads:
            result = sub.workloads.get(name)
            workloads[name] = {
                "time": finite_or_none(sub.time(name)),
                "status": sub.status(name),
                "scored": name in self.workload_set.columns,
                "ratio": finite_or_none(sub.ratios.get(name, math.nan)),
                "study_times": [finite_or_none(t) for t in result.study_times] if result else [],
                "test_time": finite_or_none(result.test_time) if result else None,
            }
        speedup = None
        if sub.speedup is not None:
            speedup = {"reference": sub.speedup.reference,
                       "geometric_mean": finite_or_none(sub.speedup.geometric_mean),
                       "per_workload": {w: finite_or_none(v)
                                        for w, v in sub.speedup.per_workload.items()}}
        return {
            "name": sub.name,
            "rank": sub.rank,
            "score": float(sub.score),
            "score_ci": None if sub.ci is None else [float(sub.ci[0]), float(sub.ci[1])],
            "rank_probability": sub.rank_probability,
            "rank_distribution": (None if sub.rank_distribution is None
                                  else list(sub.rank_distribution)),
            "workloads_reached": sub.workloads_reached,
            "times": {w: finite_or_none(sub.time(w)) for w in self.reported_workloads},
            "workloads": workloads,
            "speedup": speedup,
            "profile": [float(v) for v in sub.profile],
            "experiments": [str(p) for p in sub.experiments],
        }


def classify(raw: float, scored: float | None, best: float) -> str:
    """What became of a workload time: ``raw`` is the median over studies, ``scored`` the
    time after the 4x/held-out rules (None for workloads outside the profile), ``best`` the
    fastest submission's raw time on that workload."""
    if math.isnan(raw):
        return MISSING
    if math.isinf(raw):
        return NOT_REACHED
    if raw > 4 * best:
        return OVER_4X
    if scored is not None and math.isinf(scored):
        return VARIANT_MISSED
    return REACHED
