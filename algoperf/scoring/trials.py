"""Time-to-target of one trial, and AlgoPerf's choice of the best trial of a study.

A trial's time-to-target is its submission time (the ``score`` column) at the first evaluation
whose validation metric meets the workload's target (``>=`` for maximised metrics, ``<=`` for
minimised ones); it is infinite when no evaluation does, including after a crash or with NaN
metrics. Test targets are reported the same way but never scored (reference §4.1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from algoperf.logs import quality
from algoperf.scoring import diagnostics as dg
from algoperf.scoring.csvlog import EvalLog
from algoperf.scoring.discover import TrialDir
from algoperf.scoring.events import RunEvents
from algoperf.workloads.registry import MAXIMIZE, WorkloadInfo

TIME_COLUMN = "score"
FALLBACK_TIME_COLUMN = "accumulated_submission_time"
STEP_COLUMN = "global_step"


def metric_columns(info: WorkloadInfo) -> tuple[str, str]:
    """The validation and test columns holding ``info``'s target metric."""
    return f"validation/{info.target_metric_name}", f"test/{info.target_metric_name}"


def wanted_columns(info: WorkloadInfo) -> frozenset[str]:
    """The CSV columns scoring reads for a trial of ``info``."""
    return frozenset({TIME_COLUMN, FALLBACK_TIME_COLUMN, STEP_COLUMN, *metric_columns(info)})


def missing_columns(log: EvalLog, info: WorkloadInfo) -> list[str]:
    """The columns every AlgoPerf eval log of ``info`` has that ``log``'s header lacks: the
    step, the submission time (``score`` or ``accumulated_submission_time``) and the
    validation metric. None for a file without a header (an empty file, warned as such)."""
    if not log.header:
        return []
    header = set(log.header)
    missing = [] if STEP_COLUMN in header else [STEP_COLUMN]
    if TIME_COLUMN not in header and FALLBACK_TIME_COLUMN not in header:
        missing.append(FALLBACK_TIME_COLUMN)
    validation = metric_columns(info)[0]
    return missing if validation in header else [*missing, validation]


def log_problem(log: EvalLog, info: WorkloadInfo) -> str | None:
    """Why ``log`` is not an eval log scoring can trust (None when it is): required columns
    missing from its header, rows with another cell count than the header, or cells of the
    columns scoring reads that are not numbers."""
    missing = missing_columns(log, info)
    if missing:
        names = [repr(c) for c in missing]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        header = ",".join(log.header)
        header = header if len(header) <= 40 else header[:37] + "..."
        return (f"not an AlgoPerf eval log of {info.name}: no {listed} column (header "
                f"{header!r})")
    if log.ragged_rows:
        return f"{log.ragged_rows} rows do not have the header's {len(log.header)} cells"
    if log.bad_cells:
        return f"{log.bad_cells} cells of the columns scoring reads are not numbers"
    return None


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """How one split's metric went in one trial."""

    column: str
    target: float | None
    hit_index: int | None  # first eval meeting the target
    time_to_target: float  # inf when never reached; NaN when there is no target
    best_value: float  # NaN when the column is absent or all NaN
    time_to_best: float

    @property
    def reached(self) -> bool:
        return self.hit_index is not None


def _best_index(info: WorkloadInfo, values: np.ndarray, has_nan: bool) -> int:
    if info.direction == MAXIMIZE:
        return int(np.nanargmax(values) if has_nan else values.argmax())
    return int(np.nanargmin(values) if has_nan else values.argmin())


def metric_result(info: WorkloadInfo, log: EvalLog, column: str, target: float | None,
                  times: np.ndarray) -> MetricResult:
    """First eval meeting ``target`` in ``column`` and the best value, with their times."""
    values = log.get(column)
    nan = None if values is None else np.isnan(values)
    if values is None or values.size == 0 or nan.all():
        return MetricResult(column, target, None, math.inf if target is not None else math.nan,
                            math.nan, math.nan)
    best = _best_index(info, values, bool(nan.any()))
    hit = None if target is None else info.first_reached(values, target)
    time = math.nan if target is None else (math.inf if hit is None else float(times[hit]))
    return MetricResult(column, target, hit, time, float(values[best]), float(times[best]))


@dataclasses.dataclass(frozen=True)
class ScoredTrial:
    """A trial's outcome on its validation target (scored) and test target (reported)."""

    trial: TrialDir
    n_evals: int
    validation: MetricResult
    test: MetricResult
    crashed: bool = False
    clock: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))  # time column
    steps: np.ndarray | None = None  # global_step at each eval
    log_problem: str | None = None  # why its eval log cannot be trusted (see log_problem)
    quality: dict | None = None  # run_end's measurement_quality; None: not recorded

    @property
    def seconds_per_step(self) -> np.ndarray:
        """Submission seconds per step over each interval between evals (the first from 0);
        intervals without steps are left out."""
        if self.steps is None or self.clock.size == 0:
            return np.empty(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.diff(self.clock, prepend=0.0) / np.diff(self.steps, prepend=0.0)
        return ratios[np.isfinite(ratios)]

    @property
    def time_to_target(self) -> float:
        return self.validation.time_to_target

    @property
    def hit_index(self) -> int | None:
        return self.validation.hit_index


def _time_column(log: EvalLog, where: TrialDir, diag: dg.Diagnostics) -> np.ndarray | None:
    times = log.get(TIME_COLUMN)
    if times is None and log.n_evals:
        times = log.get(FALLBACK_TIME_COLUMN)
        if times is not None:
            diag.warn(dg.MALFORMED_CSV, f"{where.submission}: no '{TIME_COLUMN}' column; "
                      f"using '{FALLBACK_TIME_COLUMN}'", where.path)
    return times


def _warn_about_metric(trial: TrialDir, values: np.ndarray | None, column: str,
                       diag: dg.Diagnostics) -> None:
    if values is not None and np.isnan(values).any():
        diag.warn(dg.NAN_METRIC, f"{trial.submission}: {column} is NaN at "
                  f"{int(np.isnan(values).sum())} of {values.size} evals (never counts as "
                  "reaching the target)", trial.path)


def _missed(result: MetricResult) -> MetricResult:
    return dataclasses.replace(result, hit_index=None, time_to_target=math.inf)


def evaluate_trial(trial: TrialDir, log: EvalLog | None, events: RunEvents | None,
                   info: WorkloadInfo, diag: dg.Diagnostics) -> ScoredTrial:
    """Scores one trial from its eval log (None when absent) and its events (optional)."""
    val_column, test_column = metric_columns(info)
    log = log if log is not None else EvalLog({}, 0)
    problem = log_problem(log, info)
    if missing_columns(log, info):
        diag.warn(dg.MALFORMED_CSV, f"{trial.submission}: eval_measurements.csv is {problem}; "
                  "the trial counts as not reaching the target", trial.path)
        log = EvalLog({}, 0)
    times = _time_column(log, trial, diag)
    if times is None or log.n_evals == 0:
        log, times = EvalLog({}, 0), np.empty(0)
    else:
        _warn_about_metric(trial, log.get(val_column), val_column, diag)
    validation = metric_result(info, log, val_column, info.validation_target_value, times)
    test = metric_result(info, log, test_column, info.test_target_value, times)
    if validation.reached and math.isnan(validation.time_to_target):
        diag.warn(dg.MALFORMED_CSV, f"{trial.submission}: '{TIME_COLUMN}' is NaN at the eval "
                  "that reached the target; the trial counts as not reaching it", trial.path)
        validation = _missed(validation)
    crashed = events is not None and events.failed
    if crashed:
        reason = f" ({events.reason})" if events.reason else ""
        diag.warn(dg.CRASHED_TRIAL, f"{trial.submission}: run_end status "
                  f"{events.status!r}{reason}; time-to-target counts as infinite", trial.path)
        validation = _missed(validation)
    elif events is not None and events.start is not None and events.end is None:
        diag.warn(dg.UNFINISHED_TRIAL, f"{trial.submission}: events.jsonl has no run_end (run "
                  "killed or still running); scored from the evals logged so far", trial.path)
    measured = events.quality if events is not None else None
    found = quality.assess(measured)
    if found.contended:
        diag.warn(dg.CONTENDED_TRIAL, f"{trial.submission}: {trial.workload_dir} {trial.study} "
                  f"{trial.trial} ran contended: {'; '.join(found.reasons)}; its time-to-target "
                  "is noise", trial.path)
    return ScoredTrial(trial, log.n_evals, validation, test, crashed, times,
                       log.get(STEP_COLUMN), problem, measured)


def best_trial(trials: Sequence[ScoredTrial]) -> ScoredTrial | None:
    """AlgoPerf's best trial of a study: the one meeting the target in the fewest evals.

    Ties go to the smallest time-to-target, then to the earliest trial in ``trials``. AlgoPerf
    breaks ties by directory-listing order, which differs between filesystems; the smallest
    time is what the rules define (``min_i t_i``) and reproduces the published v0.6 scores.
    None when no trial meets the target.
    """
    reached = [t for t in trials if t.hit_index is not None]
    return min(reached, key=lambda t: (t.hit_index, t.time_to_target)) if reached else None
