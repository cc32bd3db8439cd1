"""Training curves: each trial's validation target metric at every eval, against submission
time, as the report plots them.

Scoring keeps only what time-to-target needs (the clock and the first eval meeting the
target), so the metric's values are read again from each trial's ``eval_measurements.csv``;
the times are the clock scoring used (``score``, else ``accumulated_submission_time``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from algoperf.scoring.csvlog import read_eval_measurements
from algoperf.scoring.report import Report
from algoperf.scoring.trials import metric_columns
from algoperf.workloads import registry


@dataclasses.dataclass(frozen=True)
class Curve:
    """One trial's validation metric at each eval; ``best``: the best trial of its study (the
    one whose time counts)."""

    submission: str
    study: str
    trial: str
    times: np.ndarray
    values: np.ndarray
    best: bool


def workload_curves(report: Report, workload: str) -> list[Curve]:
    """Every trial of ``workload`` in the report with a usable eval log, in leaderboard order."""
    column = metric_columns(registry.get_workload(workload))[0]
    curves = []
    for sub in report.submissions:
        result = sub.workloads.get(workload)
        if result is None:
            continue
        for study in result.studies:
            for trial in study.trials:
                if trial.clock.size == 0:
                    continue
                log = read_eval_measurements(trial.trial.path, {column})
                values = None if log is None else log.get(column)
                if values is None or values.size != trial.clock.size:
                    continue
                curves.append(Curve(sub.name, study.study, trial.trial.trial, trial.clock,
                                    values, trial is study.best))
    return curves
