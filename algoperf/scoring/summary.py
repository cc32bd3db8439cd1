"""Per-trial summary CSV, like AlgoPerf's ``<submission>_summary.csv``.

Same column names as AlgoPerf's (``score_submissions.get_summary_df``) plus ``study`` and
``status``. ``step_time (s)`` is, as in AlgoPerf, the median over every eval interval of every
trial of the workload of submission seconds per step. Unlike AlgoPerf, ``time to target on
test (s)`` is the time of the first eval meeting the test target (AlgoPerf reports the time of
the best test eval there).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from algoperf.scoring.report import SubmissionScore
from algoperf.scoring.trials import TrialResult
from algoperf.workloads import registry

COLUMNS = (
    "workload", "study", "trial", "val target metric name", "val target metric value",
    "val target reached", "best metric value on val", "time to best eval on val (s)",
    "time to target on val (s)", "step_time (s)", "step_hint", "test target metric name",
    "test target metric value", "test target reached", "best metric value on test",
    "time to best eval on test (s)", "time to target on test (s)", "status",
)


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return "inf" if math.isinf(value) else repr(float(value))


def _status(trial: TrialResult) -> str:
    if trial.crashed:
        return "crashed"
    if trial.n_evals == 0:
        return "no evals"
    return "reached" if trial.validation.reached else "not reached"


def step_time(trials: list[TrialResult]) -> float:
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
                _number(test.time_to_target), _status(trial),
            ), strict=True)))
    return rows


def summary_csv(sub: SubmissionScore, rules: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(sub, rules))
    return out.getvalue()
