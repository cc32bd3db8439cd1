"""Speedups against a reference submission (reference §4.5).

Per workload the speedup is ``t_reference / t_submission`` (above 1: faster than the
reference); a missed target counts as the runtime budget plus one second, as in AlgoPerf's
``compute_speedups.py``. The summary is the geometric mean over workloads both have logs for.
AlgoPerf prints the inverse, the time ratio ``t_submission / t_reference``, and always uses the
v0.5 budgets; here the budgets are those of the rules version being scored, so ``--rules v0.5``
reproduces AlgoPerf's figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np


def _capped(time: float, budget: float) -> float:
    return budget + 1.0 if math.isinf(time) else time


@dataclasses.dataclass(frozen=True)
class Speedup:
    """A submission's speedups over the reference, per workload and overall."""

    reference: str
    per_workload: dict[str, float]  # NaN where either lacks logs
    geometric_mean: float  # NaN when no workload is shared


def speedup(times: Mapping[str, float], reference_times: Mapping[str, float],
            budgets: Mapping[str, float], reference: str) -> Speedup:
    """Speedups of ``times`` over ``reference_times`` on the workloads of ``budgets``."""
    per_workload = {}
    for workload, budget in budgets.items():
        t, ref = times.get(workload, math.nan), reference_times.get(workload, math.nan)
        per_workload[workload] = _capped(ref, budget) / _capped(t, budget)
    shared = np.array([v for v in per_workload.values() if not math.isnan(v)])
    mean = float(np.exp(np.log(shared).mean())) if shared.size else math.nan
    return Speedup(reference, per_workload, mean)
