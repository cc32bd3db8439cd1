"""Per-trial summary CSV, like AlgoPerf's ``<submission>_summary.csv``.

Same column names as AlgoPerf's (``score_submissions.get_summary_df``) plus ``study``,
``status`` and the trial's measurement quality (`algoperf.logs.quality`): ``steps to target on
val`` (from the eval log), and from our runs' ``run_end`` record the median step time of the
timed loop, the share of the CPU time other processes and steal took, and ``contention``
(contended, ok, unknown; "not recorded" for logs without the record, such as AlgoPerf's).
``step_time (s)`` is, as in AlgoPerf, the median over every eval interval of every trial of
the workload of submission seconds per step. Unlike AlgoPerf, ``time to target on test (s)``
is the time of the first eval meeting the test target (AlgoPerf reports the time of the best
test eval there).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from algoperf.logs import quality
from algoperf.scoring.report import SubmissionScore
from algoperf.scoring.trials import ScoredTrial
from algoperf.workloads import registry

COLUMNS = (
    "workload", "study", "trial", "val target metric name", "val target metric value",
    "val target reached", "best metric value on val", "time to best eval on val (s)",
    "time to target on val (s)", "step_time (s)", "step_hint", "test target metric name",
    "test target metric value", "test target reached", "best metric value on test",
    "time to best eval on test (s)", "time to target on test (s)", "status",
    "steps to target on val", "median step time (s)", "other cpu share", "steal share",
    "contention",
)


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return "inf" if math.isinf(value) else repr(float(value))


def _status(trial: ScoredTrial) -> str:
    if trial.crashed:
        return "crashed"
    if trial.n_evals == 0:
        return "no evals"
    return "reached" if trial.validation.reached else "not reached"


def _steps_to_target(trial: ScoredTrial) -> str:
    hit = trial.validation.hit_index
    if hit is None or trial.steps is None or hit >= trial.steps.size:
        return ""
    step = float(trial.steps[hit])
    return str(int(step)) if step.is_integer() else _number(step)


def _quality_cells(trial: ScoredTrial) -> tuple[str, ...]:
    """Median step time, other-process and steal shares, contention (recorded runs only)."""
    record = trial.quality or {}
    cells = tuple(_number(quality.number(record.get(key)))
                  for key in ("median_step_sec", "other_cpu_share", "steal_share"))
    return (_steps_to_target(trial), *cells, quality.assess(trial.quality).label)


def step_time(trials: list[ScoredTrial]) -> float:
    """Median submission seconds per step over all eval intervals of ``trials``."""
    ratios = [t.seconds_per_step for t in trials if t.seconds_per_step.size]
    return float(np.median(np.concatenate(ratios))) if ratios else math.nan


def summary_rows(sub: SubmissionScore, rules: str) -> list[dict[str, str]]:
    """One row per trial of ``sub``, workloads in name order, trials in study order."""
    version = registry.get_rules(rules)
    rows = []
    for workload, result in sorted(sub.workloads.items()):
        seconds_per_step = _number(step_time(result.trials))
        for trial in result.trials:
            val, test = trial.validation, trial.test
            rows.append(dict(zip(COLUMNS, (
                trial.trial.workload_dir, trial.trial.study, trial.trial.trial,
                val.column, _number(val.target), str(val.reached), _number(val.best_value),
                _number(val.time_to_best), _number(val.time_to_target), seconds_per_step,
                str(version.step_hint(workload)), test.column, _number(test.target),
                str(test.reached), _number(test.best_value), _number(test.time_to_best),
                _number(test.time_to_target), _status(trial), *_quality_cells(trial),
            ), strict=True)))
    return rows


def summary_csv(sub: SubmissionScore, rules: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(sub, rules))
    return out.getvalue()
