"""Timing invariants of AlgoPerf's clock, checked on a trial's eval rows.

The runner (ours and AlgoPerf's, reference §2.5-2.6) keeps four clocks per eval: submission,
eval and logging time accumulate disjoint intervals of the wall clock, and ``total_duration``
is the wall time since the process's training loop started. So, within one process
(a *segment*: a fresh start or a resume; ``total_duration`` restarts at each):

- the three accumulated clocks never decrease, and ``score`` equals the submission time;
- they grow by no more than ``total_duration`` does between two evals, and at the first eval
  of a fresh trial they sum to at most ``total_duration``;
- an eval starts at least ``eval_period`` after the previous one ended (the start of eval k+1
  is its end minus the eval time it added), except a final eval forced by the end of training;
- an eval happens only while submission time is under the budget.

Sums of many float intervals are compared with a tolerance of 1 microsecond plus 1e-9 of the
compared time; nothing else is forgiven.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from algoperf.logs.values import parse_float
from algoperf.verification.findings import Problem

CLOCKS = ("accumulated_submission_time", "accumulated_eval_time", "accumulated_logging_time")


@dataclasses.dataclass(frozen=True)
class EvalPoint:
    """One eval's clocks. ``line`` locates it in ``file``; ``fresh`` marks the segment of a
    trial's first process (its clocks started at zero with the loop)."""

    file: str
    line: int
    segment: int
    step: float
    score: float
    clocks: tuple[float, float, float]  # submission, eval, logging
    total: float
    fresh: bool = True

    @classmethod
    def from_metrics(cls, file: str, line: int, segment: int, step: float,
                     metrics: dict, fresh: bool) -> EvalPoint:
        """From a metrics mapping (an eval event's, or a CSV row's cells); absent or
        unreadable values become NaN, which every comparison below reports."""
        return cls(file, line, segment, step, _number(metrics.get("score")),
                   tuple(_number(metrics.get(c)) for c in CLOCKS),
                   _number(metrics.get("total_duration")), fresh)


def _number(value: object) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return parse_float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _tolerance(*values: float) -> float:
    return 1e-6 + 1e-9 * max((abs(v) for v in values if math.isfinite(v)), default=0.0)


def check_timing(points: Sequence[EvalPoint], eval_period: float | None, budget: float | None,
                 final_eval_forced: bool) -> list[Problem]:
    """Every violated invariant, one problem per row and rule.

    ``final_eval_forced``: the last row is a final eval that training's end forced (max steps
    or TrainingCompleteError), which need not wait for the eval period.
    """
    problems: list[Problem] = []
    for k, p in enumerate(points):
        problems += _row_problems(p, budget)
        prev = points[k - 1] if k else None
        if prev is not None:
            problems += _monotone_problems(prev, p)
        if prev is None or prev.segment != p.segment:
            if p.fresh:
                used = sum(p.clocks)
                if not used <= p.total + _tolerance(used, p.total):
                    problems.append(Problem(p.file, p.line, f"submission, eval and logging time "
                                            f"add up to {used:.6f}s, more than the "
                                            f"{p.total:.6f}s total duration"))
            continue
        problems += _interval_problems(prev, p)
        last = k == len(points) - 1
        if eval_period is not None and not (last and final_eval_forced):
            start = p.total - (p.clocks[1] - prev.clocks[1])
            gap = start - prev.total
            if not gap >= eval_period - _tolerance(start, prev.total):
                problems.append(Problem(p.file, p.line, f"eval started {gap:.6f}s after the "
                                        f"previous eval ended, before the {eval_period:g}s "
                                        "eval period"))
    return problems


def _row_problems(p: EvalPoint, budget: float | None) -> list[Problem]:
    problems = []
    values = {"score": p.score, **dict(zip(CLOCKS, p.clocks, strict=True)),
              "total_duration": p.total}
    missing = [name for name, v in values.items() if not math.isfinite(v) or v < 0]
    if missing:
        return [Problem(p.file, p.line, f"{', '.join(missing)} missing, negative or not a "
                        "finite number")]
    if p.score != p.clocks[0]:
        problems.append(Problem(p.file, p.line, f"score {p.score!r} is not the accumulated "
                                f"submission time {p.clocks[0]!r}"))
    if budget is not None and not p.clocks[0] < budget:
        problems.append(Problem(p.file, p.line, f"eval at {p.clocks[0]:.3f}s of submission "
                                f"time, past the {budget:g}s budget (evals happen only while "
                                "time remains)"))
    return problems


def _monotone_problems(prev: EvalPoint, p: EvalPoint) -> list[Problem]:
    problems = []
    for name, a, b in zip(CLOCKS, prev.clocks, p.clocks, strict=True):
        if b < a:
            problems.append(Problem(p.file, p.line, f"{name} went back from {a!r} to {b!r}"))
    if p.step <= prev.step:
        problems.append(Problem(p.file, p.line, f"global_step {p.step:g} does not follow "
                                f"{prev.step:g}"))
    return problems


def _interval_problems(prev: EvalPoint, p: EvalPoint) -> list[Problem]:
    if p.total < prev.total:
        return [Problem(p.file, p.line, f"total_duration went back from {prev.total!r} to "
                        f"{p.total!r} within one process")]
    grown = sum(p.clocks) - sum(prev.clocks)
    elapsed = p.total - prev.total
    if not grown <= elapsed + _tolerance(p.total, sum(p.clocks)):
        return [Problem(p.file, p.line, f"clocks grew by {grown:.6f}s since the previous eval, "
                        f"but only {elapsed:.6f}s of wall time passed")]
    return []
