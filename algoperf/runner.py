"""The runner: trains a submission on a workload with AlgoPerf v0.6's clock and stopping rules.

:func:`run` plays AlgoPerf's ``score_submission_on_workload`` for one workload: it lays out
``<experiment_dir>/<experiment_name>/study_<k>/<workload>_<framework>/trial_<i>/``, draws the
trials' hyperparameters and seeds, and calls :func:`train_once` per trial. ``train_once``
follows reference §2.5 step for step: submission time is everything between the ends of
consecutive loop iterations except eval, logging and checkpointing; ``prepare_for_eval`` is
charged; evals happen when ``eval_period_time_sec`` of wall clock has passed since the end of
the last eval (so the first after step 1); the budget is checked only at those points.

Fixed AlgoPerf quirks (documented in docs/runner.md): seeds are derived per trial with hashlib
instead of shared; the Halton order is seeded; the device is synchronised before the clock is
read at eval points, so asynchronously dispatched work is charged to the submission.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from algoperf import (
    checkpoints,
    datasets,
    distributed,
    frameworks,
    hardware,
    random_utils,
    spec,
    tuning,
)
from algoperf.errors import HarnessError, UserError
from algoperf.hardware.contention import ContentionMeter
from algoperf.hashing import file_sha256
from algoperf.logs import events as ev
from algoperf.logs import quality, trial_files
from algoperf.logs.measurements import MetricLogger
from algoperf.submission import Submission, batch_size, load_submission, submission_root
from algoperf.workloads import registry

RNG_BLOCK = 1024  # per-step rngs are computed this many steps at a time
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One `algoperf run`: a submission on a workload, for some studies and trials."""

    submission_path: Path
    workload: str
    framework: str
    experiment_dir: Path
    experiment_name: str
    data_dir: Path = Path("~/data")
    imagenet_v2_data_dir: Path | None = None
    ruleset: str = "external"
    tuning_search_space: Path | None = None
    rules: str = registry.DEFAULT_RULES
    num_studies: int = 1
    study: int | None = None  # run only this study
    num_tuning_trials: int | None = None  # default: the rules version's trials per study
    hparam_start_index: int | None = None
    hparam_end_index: int | None = None
    seed: int | None = None  # master seed; random (and logged) when None
    max_global_steps: int | None = None
    resume: bool = False
    overwrite: bool = False
    save_checkpoints: bool = True
    save_intermediate_checkpoints: bool = False
    debug: bool = False
    reference: str | None = None  # reference hardware profile enforced before the run
    allow_nonreference: bool = False  # run on other hardware anyway, marked non-certifiable
    submission_root: Path | None = None  # repository root on sys.path; default: cwd if it
    # holds the submission (submission.submission_root)


@dataclasses.dataclass
class TrialResult:
    """How one trial ended. ``time_to_target`` is inf when the target was never reached."""

    study: int
    trial: int
    trial_dir: Path
    status: str  # "completed" or "failed"
    reason: str  # target_reached, budget_exhausted, max_steps, training_complete, error, ...
    time_to_target: float
    accumulated_submission_time: float
    global_step: int
    num_evals: int
    preemption_count: int
    error: str | None = None
    # steps to target, median step time and the host's contention over the timed loop
    # (algoperf.logs.quality); None where not recorded
    quality: dict[str, Any] | None = None


@dataclasses.dataclass
class Snapshot:
    """What a progress display shows about a running trial."""

    study: int
    trial: int
    num_trials: int
    global_step: int
    submission_time: float
    budget: float
    steps_per_sec: float
    last_eval: dict[str, Any] | None
    target_metric: str
    target_value: float


class Observer(Protocol):
    """Receives progress; the CLI's live display implements it."""

    def trial_started(self, study: int, trial: int, num_trials: int, hyperparameters: Any) -> None:
        ...

    def progress(self, snapshot: Snapshot) -> None: ...

    def trial_finished(self, result: TrialResult) -> None: ...


class NullObserver:
    def trial_started(self, study, trial, num_trials, hyperparameters) -> None:
        pass

    def progress(self, snapshot: Snapshot) -> None:
        pass

    def trial_finished(self, result: TrialResult) -> None:
        pass


class SubmissionContractError(Exception):
    """A submission function returned something the API does not allow."""


PROGRESS_INTERVAL_SEC = 1.0  # the loop reports progress this often (and at every eval)


def _check_update_return(name: str, value: Any) -> tuple[Any, Any, Any]:
    if not isinstance(value, tuple | list) or len(value) != 3:
        got = f"a {type(value).__name__}" + (f" of length {len(value)}"
                                               if isinstance(value, tuple | list) else "")
        raise SubmissionContractError(
            f"{name} returned {got}; it must return (optimizer_state, params, model_state)"
        )
    return value[0], value[1], value[2]


def _non_finite_losses(result: dict[str, Any]) -> list[str]:
    return [
        f"{k}={v}" for k, v in result.items()
        if k.endswith("loss") and isinstance(v, float | int | np.floating)
        and not math.isfinite(float(v))
    ]


@dataclasses.dataclass
class _Trial:
    """Everything train_once needs about its trial."""

    config: RunConfig
    submission: Submission
    workload: spec.Workload
    info: registry.WorkloadInfo
    study: int
    trial: int
    num_trials: int
    trial_dir: Path
    hyperparameters: Any
    seed: int
    budget: float
    batch_size: int
    eval_batch_size: int
    hardware: hardware.ReferenceCheck | None = None  # the machine, as checked before the run
    search_space_sha256: str | None = None  # of the search space file (external tuning)
    ranks: distributed.Ranks = dataclasses.field(default_factory=distributed.Ranks)
    devices: int = 1  # devices the batch is split over (JAX: local devices; PyTorch: ranks)
    checkpoints_off: str | None = None  # why checkpoints were switched off for this trial


def _trial_error(e: BaseException, submission: Submission) -> str:
    """One line naming the exception and where in the submission it happened."""
    where = ""
    folder = submission.path.parent.resolve()
    for frame in traceback.extract_tb(e.__traceback__):
        try:
            if Path(frame.filename).resolve().is_relative_to(folder):
                where = f" at {Path(frame.filename).name}:{frame.lineno}"
        except (OSError, ValueError):
            pass
    return f"{type(e).__name__}{where}: {e}"


def _harness_failure(e: BaseException, submission: Submission) -> bool:
    """Whether ``e`` is the harness's or the machine's failure, not the submission's: an OSError
    (permission denied, disk full, an I/O error) raised in algoperf's own code -- writing logs
    or checkpoints, reading data -- even when a submission's call led there (its metrics
    logger). The innermost frame that is either the submission's or algoperf's decides."""
    if not isinstance(e, OSError):
        return False
    folder = submission.path.parent.resolve()
    owner = None
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        try:
            if Path(frame.f_code.co_filename).resolve().is_relative_to(folder):
                owner = "submission"
            elif str(frame.f_globals.get("__name__", "")).split(".")[0] in (
                    "algoperf", "algorithmic_efficiency"):
                owner = "harness"
        except (OSError, ValueError):
            pass
        tb = tb.tb_next
    return owner == "harness"


def _harness_error(t: _Trial, s: checkpoints.TrainingState, e: BaseException,
                   log: ev.EventLog) -> HarnessError:
    """Records a harness or machine failure as an error event without a run_end (the trial
    did not end: --resume continues it) and returns the error that stops the run."""
    message = f"{type(e).__name__}: {e}"
    try:
        log.append(ev.ERROR, {"global_step": s.global_step, "message": message,
                              "cause": "harness", "traceback": traceback.format_exc()})
    except OSError:
        pass  # the log itself may be what failed; the run's error line still says why
    return HarnessError(f"study {t.study} trial {t.trial} stopped at step {s.global_step} by a "
                        f"harness or machine failure, not the submission's: {message}; fix "
                        "it and continue with --resume")


@dataclasses.dataclass
class _Start:
    """Where a trial's training loop starts: fresh, or restored from its latest checkpoint."""

    input_queue: Any
    rng: np.ndarray  # the per-step rngs derive from it
    state: checkpoints.TrainingState


def _set_up(t: _Trial, log: ev.EventLog, logger: MetricLogger) -> _Start:
    """Builds the input pipeline, model and optimizer, restores the latest checkpoint if there
    is one, and records the start (or the resumption) of the trial. None of it is timed."""
    workload, config = t.workload, t.config
    ckpt = t.ranks.from_writer(lambda: checkpoints.latest_checkpoint(t.trial_dir))
    if ckpt is None:  # recorded first, so a trial whose set-up fails still has its start
        restart = _restart_reason(t) if t.ranks.writer else None
        if restart is not None:
            _log.warning("study %d trial %d: restarting from step 0: %s", t.study, t.trial,
                         restart)
        logger.truncate_evals_after(0)
        log.append(ev.RUN_START, _run_start_data(t))
    rng = random_utils.PRNGKey(t.seed)
    if config.ruleset == "external":
        rng, _ = random_utils.split(rng, 2)
    data_rng, opt_init_rng, model_init_rng, rng = random_utils.split(rng, 4)
    input_queue = workload._build_input_queue(
        data_rng, "train", data_dir=str(config.data_dir), global_batch_size=t.batch_size)
    params, model_state = workload.init_model_fn(model_init_rng)
    optimizer_state = t.submission.init_optimizer_state(
        workload, params, model_state, t.hyperparameters, opt_init_rng)
    state = checkpoints.TrainingState(
        params, optimizer_state, model_state, train_state={
            "validation_goal_reached": False,
            "test_goal_reached": False,
            "is_time_remaining": True,
            "last_eval_time": 0.0,
            "training_complete": False,
            "accumulated_submission_time": 0.0,
            "accumulated_eval_time": 0.0,
            "accumulated_logging_time": 0.0,
            "last_step_end_time": None,
        }, eval_results=[], global_step=0, preemption_count=0)
    if ckpt is not None:
        restored = checkpoints.restore(ckpt, config.framework, state)
        state.train_state.update(restored.train_state)
        state = dataclasses.replace(restored, train_state=state.train_state,
                                    preemption_count=restored.preemption_count + 1)
        logger.truncate_evals_after(state.global_step)  # later rows are redone, not repeated
        log.append(ev.RESUME, {"checkpoint": ckpt.name, "global_step": state.global_step,
                               "preemption_count": state.preemption_count,
                               "num_evals": len(state.eval_results),
                               "submission_sha256": t.submission.source_sha256,
                               **_hardware_data(t)})
    if t.ranks.writer:
        trial_files.write_meta_data(t.trial_dir, state.preemption_count, workload, t.seed)
        trial_files.write_flags(t.trial_dir, state.preemption_count, _flags(t))
    workload.attach_metrics_logger(logger if t.ranks.writer else None)  # as AlgoPerf: rank 0
    return _Start(input_queue, np.asarray(rng, dtype=np.uint32), state)


def _restart_reason(t: _Trial) -> str | None:
    """Why a trial that started before has no checkpoint to continue from (None: it never
    started)."""
    path = t.trial_dir / ev.EVENTS_FILENAME
    records = ev.read_events(path) if path.exists() else []
    if not any(r["type"] == ev.RUN_START for r in records):
        return None
    off = [r["data"] for r in records if r["type"] == ev.CHECKPOINT_DISABLED]
    if off:
        return (f"its checkpoints were switched off at step {off[-1].get('global_step')} "
                f"({off[-1].get('reason')})")
    if not t.config.save_checkpoints:
        return "it runs with --no-save-checkpoints"
    return "it stopped before its first checkpoint was written"


def _evaluate(t: _Trial, s: checkpoints.TrainingState, eval_rng: Any, global_start_time: float,
              clock: Callable[[], float]) -> dict[str, Any]:
    """Runs the workload's eval (untimed) and updates the goals and eval clocks in
    ``s.train_state``; returns AlgoPerf's eval row (metrics plus the four clocks)."""
    workload, config, ts = t.workload, t.config, s.train_state
    e0 = clock()
    result = workload.eval_model(
        t.eval_batch_size, s.params, s.model_state, eval_rng, str(config.data_dir),
        str(config.imagenet_v2_data_dir) if config.imagenet_v2_data_dir else None,
        s.global_step)
    result = {k: _scalar(v) for k, v in result.items()}
    ts["validation_goal_reached"] |= bool(workload.has_reached_validation_target(result))
    ts["test_goal_reached"] |= bool(workload.has_reached_test_target(result))
    e1 = clock()
    ts["last_eval_time"] = e1
    ts["accumulated_eval_time"] += e1 - e0
    result["score"] = ts["accumulated_submission_time"]
    result["total_duration"] = e1 - global_start_time
    for clock_name in ("accumulated_submission_time", "accumulated_eval_time",
                       "accumulated_logging_time"):
        result[clock_name] = ts[clock_name]
    return result


def _record_eval(t: _Trial, s: checkpoints.TrainingState, result: dict[str, Any],
                 log: ev.EventLog, logger: MetricLogger) -> None:
    """Logs an eval row (CSV and event), fails the trial on a non-finite loss, checkpoints."""
    s.eval_results.append((s.global_step, result))
    logger.append_scalar_metrics(dict(result), s.global_step, s.preemption_count, is_eval=True)
    log.append(ev.EVAL, ev.EvalData(
        global_step=s.global_step, preemption_count=s.preemption_count, metrics=result,
        validation_goal_reached=s.train_state["validation_goal_reached"],
        test_goal_reached=s.train_state["test_goal_reached"]))
    bad = _non_finite_losses(result)
    if bad:
        raise FloatingPointError(f"non-finite eval loss ({', '.join(bad)})")
    if t.config.save_checkpoints:
        _save_checkpoint(t, log, s)


def train_once(t: _Trial, log: ev.EventLog, observer: Observer) -> TrialResult:
    """Trains one trial to its end (AlgoPerf's train_once, reference §2.5), recording it in
    ``log``. An exception from the submission (or a non-finite loss) fails the trial."""
    sub, config = t.submission, t.config
    sync = frameworks.syncer(config.framework)
    logger = MetricLogger(t.trial_dir) if t.ranks.writer else distributed.NullMetricLogger()
    clock = t.ranks.clock  # perf_counter; under DDP the latest over the ranks (sync_ddp_time)
    sampler = None
    stop_reason, status, error = None, "completed", None
    s = checkpoints.TrainingState(None, None, None, {"accumulated_submission_time": 0.0}, [],
                                  0, 0)
    step_times, meter = array.array("d"), None  # the timed loop's per-step intervals
    try:
        start = _set_up(t, log, logger)
        s = start.state
        if t.ranks.writer:  # hardware_sample events meanwhile, unless the host takes them
            sampler = hardware.trial_sampler(log)
            meter = ContentionMeter().start()  # host counters now and at the loop's end
        stop_reason = _train(t, start, sync, clock, log, logger, observer, step_times)
    except UserError:
        if sampler is not None:
            sampler.stop()
        raise
    except Exception as e:  # noqa: BLE001 - a failing submission fails its trial, not the run
        if sampler is not None:
            sampler.stop()
        if _harness_failure(e, sub):
            raise _harness_error(t, s, e, log) from e
        status, stop_reason = "failed", "error"
        error = _trial_error(e, sub)
        log.append(ev.ERROR, {"global_step": s.global_step, "message": error,
                              "cause": "submission", "traceback": traceback.format_exc()})
        if config.debug:
            log.append(ev.RUN_END, _run_end_data(status, stop_reason, s, error,
                                                 _quality(t, s, meter, step_times)))
            raise
    if sampler is not None:
        sampler.stop()  # the trial's last hardware_sample comes before its closing events
    if status == "completed":
        logger.append_scalar_metrics({"score": s.train_state["accumulated_submission_time"]},
                                     s.global_step, s.preemption_count)
        if config.save_checkpoints:
            _save_checkpoint(t, log, s)
    logger.finish()
    measured = _quality(t, s, meter, step_times)
    log.append(ev.RUN_END, _run_end_data(status, stop_reason, s, error, measured))
    return TrialResult(
        study=t.study, trial=t.trial, trial_dir=t.trial_dir, status=status,
        reason=stop_reason or "stopped",
        time_to_target=_time_to_target(t.info, s.eval_results) if status == "completed"
        else math.inf,
        accumulated_submission_time=s.train_state["accumulated_submission_time"],
        global_step=s.global_step, num_evals=len(s.eval_results),
        preemption_count=s.preemption_count, error=error, quality=measured)


def _quality(t: _Trial, s: checkpoints.TrainingState, meter: ContentionMeter | None,
             step_times: array.array) -> dict[str, Any] | None:
    """The trial's ``measurement_quality`` record (rank 0; None before the loop could start):
    the host's counters since the loop started, step intervals, steps to target."""
    if meter is None:
        return None
    return meter.record(step_times, _steps_to_target(t.info, s.eval_results))


def _train(t: _Trial, start: _Start, sync: Callable[[Any], None], clock: Callable[[], float],
           log: ev.EventLog, logger: MetricLogger, observer: Observer,
           step_times: array.array | None = None) -> str | None:
    """The timed loop; updates ``start.state`` in place and returns why it stopped.

    Per step it reads the clock twice, compares and appends the step's interval to
    ``step_times`` (rngs come in blocks of RNG_BLOCK steps); everything else happens at eval
    points, and progress reaches ``observer`` at evals and every PROGRESS_INTERVAL_SEC, its
    cost charged to logging time.
    """
    workload, sub, config, s = t.workload, t.submission, t.config, start.state
    ts = s.train_state
    global_start_time = clock()
    # The clock is time.perf_counter (monotonic; train_state's times are on it; under DDP the
    # latest reading over the ranks, so every rank takes the same decisions). Before the
    # first eval of this process -- a fresh trial or a restored one, whose stamps belong to the
    # old process's clock -- an eval is due at once, as AlgoPerf's 0.0 on the epoch clock is.
    ts["last_eval_time"] = 0.0
    last_eval_time = -math.inf
    last_step_end_time = ts["last_step_end_time"] = global_start_time
    submission_time = ts["accumulated_submission_time"]
    eval_period = workload.eval_period_time_sec
    update_kwargs = ({"train_state": types.MappingProxyType(ts)} if sub.wants_train_state
                     else {})
    stop_reason = None
    block_start = s.global_step
    rng_block = random_utils.step_rngs(start.rng, block_start, RNG_BLOCK)
    next_progress = global_start_time
    progress_step, progress_time = s.global_step, global_start_time
    record_step = (step_times if step_times is not None else array.array("d")).append
    while (ts["is_time_remaining"] and not ts["training_complete"]
           and not (ts["validation_goal_reached"] and ts["test_goal_reached"])):
        if s.global_step - block_start >= RNG_BLOCK:
            block_start = s.global_step
            rng_block = random_utils.step_rngs(start.rng, block_start, RNG_BLOCK)
        data_select_rng, update_rng, prep_eval_rng, eval_rng = rng_block[
            s.global_step - block_start]
        batch = sub.data_selection(workload, start.input_queue, s.optimizer_state, s.params,
                                   s.model_state, t.hyperparameters, s.global_step,
                                   data_select_rng)
        try:
            s.optimizer_state, s.params, s.model_state = _check_update_return(
                "update_params", sub.update_params(
                    workload=workload, current_param_container=s.params,
                    current_params_types=workload.model_params_types,
                    model_state=s.model_state, hyperparameters=t.hyperparameters, batch=batch,
                    loss_type=workload.loss_type, optimizer_state=s.optimizer_state,
                    eval_results=s.eval_results, global_step=s.global_step, rng=update_rng,
                    **update_kwargs))
        except spec.TrainingCompleteError:
            ts["training_complete"] = True
            stop_reason = "training_complete"
        s.global_step += 1
        if config.max_global_steps is not None and s.global_step == config.max_global_steps:
            ts["training_complete"] = True
            stop_reason = stop_reason or "max_steps"
        if t.ranks.any(ts["training_complete"]):  # a stop on one rank stops them all
            ts["training_complete"] = True
            stop_reason = stop_reason or "training_complete"
        now = clock()
        record_step(now - last_step_end_time)
        submission_time += now - last_step_end_time
        ts["accumulated_submission_time"] = submission_time
        if (now - last_eval_time) >= eval_period or ts["training_complete"]:
            sync((s.optimizer_state, s.params, s.model_state))  # charge dispatched work
            submission_time += clock() - now
            if sub.prepare_for_eval is not None:
                del batch
                p0 = clock()
                s.optimizer_state, s.params, s.model_state = _check_update_return(
                    "prepare_for_eval", sub.prepare_for_eval(
                        workload=workload, current_param_container=s.params,
                        current_params_types=workload.model_params_types,
                        model_state=s.model_state, hyperparameters=t.hyperparameters,
                        loss_type=workload.loss_type, optimizer_state=s.optimizer_state,
                        eval_results=s.eval_results, global_step=s.global_step,
                        rng=prep_eval_rng))
                sync((s.optimizer_state, s.params, s.model_state))
                submission_time += clock() - p0
            ts["accumulated_submission_time"] = submission_time
            ts["is_time_remaining"] = submission_time < t.budget
            if not ts["is_time_remaining"]:
                stop_reason = "budget_exhausted"
            else:
                result = _evaluate(t, s, eval_rng, global_start_time, clock)
                last_eval_time = ts["last_eval_time"]
                l0 = clock()
                _record_eval(t, s, result, log, logger)
                observer.progress(_snapshot(t, s, 0.0))  # the display counts as logging
                ts["accumulated_logging_time"] += clock() - l0
                if ts["validation_goal_reached"] and ts["test_goal_reached"]:
                    stop_reason = "targets_reached"
        last_step_end_time = ts["last_step_end_time"] = clock()
        if last_step_end_time >= next_progress:
            rate = (s.global_step - progress_step) / max(last_step_end_time - progress_time,
                                                         1e-9)
            progress_step, progress_time = s.global_step, last_step_end_time
            next_progress = last_step_end_time + PROGRESS_INTERVAL_SEC
            observer.progress(_snapshot(t, s, rate))
            shown = clock()  # the display is the harness's, not the submission's, time
            ts["accumulated_logging_time"] += shown - last_step_end_time
            last_step_end_time = ts["last_step_end_time"] = shown
    return stop_reason


def _scalar(value: Any) -> Any:
    """Eval metrics as plain Python numbers (JAX/NumPy/PyTorch scalars are converted)."""
    if isinstance(value, bool | int | float | str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _first_hit(info: registry.WorkloadInfo, eval_results) -> tuple[int, dict] | None:
    """The (global step, result) of the first eval meeting the validation target, by the
    registry's one target test (as scoring finds it); None when none did."""
    metric = f"validation/{info.target_metric_name}"
    hit = info.first_reached([result.get(metric) for _, result in eval_results])
    return None if hit is None else eval_results[hit]


def _steps_to_target(info: registry.WorkloadInfo, eval_results) -> int | None:
    hit = _first_hit(info, eval_results)
    return None if hit is None else int(hit[0])


def _time_to_target(info: registry.WorkloadInfo, eval_results) -> float:
    hit = _first_hit(info, eval_results)
    return math.inf if hit is None else float(hit[1]["score"])


def _snapshot(t: _Trial, s: checkpoints.TrainingState, rate: float) -> Snapshot:
    return Snapshot(
        study=t.study, trial=t.trial, num_trials=t.num_trials, global_step=s.global_step,
        submission_time=s.train_state["accumulated_submission_time"], budget=t.budget,
        steps_per_sec=rate, last_eval=s.eval_results[-1][1] if s.eval_results else None,
        target_metric=f"validation/{t.info.target_metric_name}",
        target_value=t.workload.validation_target_value)


def _save_checkpoint(t: _Trial, log: ev.EventLog, s: checkpoints.TrainingState) -> None:
    if not t.ranks.writer:  # rank 0 writes; every rank restores
        return
    if t.checkpoints_off is not None:
        return
    state = dataclasses.replace(s, train_state=dict(s.train_state))
    try:
        path = checkpoints.save(t.trial_dir, t.config.framework, state,
                                keep_intermediate=t.config.save_intermediate_checkpoints)
    except checkpoints.Unserializable as e:
        # The trial trains on without checkpoints; a preempted trial starts again from step 0.
        t.checkpoints_off = str(e)
        log.append(ev.CHECKPOINT_DISABLED, {"global_step": s.global_step, "reason": str(e)})
        _log.warning("study %d trial %d: checkpoints switched off at step %d: %s; if this run "
                     "is interrupted, --resume restarts the trial from step 0", t.study,
                     t.trial, s.global_step, e)
        return
    log.append(ev.CHECKPOINT, {"name": path.name, "global_step": s.global_step,
                               "bytes": path.stat().st_size})


def _run_start_data(t: _Trial) -> ev.RunStartData:
    hp = t.hyperparameters._asdict() if t.hyperparameters is not None else None
    return ev.RunStartData(
        workload=t.info.name,
        framework=t.config.framework,
        rules_version=t.config.rules,
        ruleset=t.config.ruleset,
        study=t.study,
        trial=t.trial,
        submission=str(t.submission.path),
        submission_sha256=t.submission.source_sha256,
        search_space_sha256=t.search_space_sha256,
        hyperparameters=hp,
        seed=t.seed,
        master_seed=t.config.seed,
        budget_sec=t.budget,
        eval_period_sec=t.workload.eval_period_time_sec,
        batch_size=t.batch_size,
        eval_batch_size=t.eval_batch_size,
        max_global_steps=t.config.max_global_steps,
        validation_target=t.workload.validation_target_value,
        test_target=t.workload.test_target_value,
        target_metric=t.workload.target_metric_name,
        **_hardware_data(t),
        image_digest=os.environ.get("ALGOPERF_IMAGE_ID"),
        lockfile_sha256=os.environ.get("ALGOPERF_LOCKFILE_SHA256"),
        dataset_manifest_root=datasets.recorded_root(t.config.data_dir, t.info.dataset),
        processes=t.ranks.world_size,
        devices=t.devices,
    )


def _hardware_data(t: _Trial) -> dict[str, Any]:
    """Fingerprint, digest, reference profile and certifiability (hardware.ReferenceCheck)."""
    return t.hardware.event_data() if t.hardware is not None else {"fingerprint": None}


def _run_end_data(status: str, reason: str | None, s: checkpoints.TrainingState,
                  error: str | None, measured: dict[str, Any] | None = None) -> ev.RunEndData:
    return ev.RunEndData(
        status=status, reason=reason,
        accumulated_submission_time=s.train_state["accumulated_submission_time"],
        global_step=s.global_step, num_evals=len(s.eval_results), error=error,
        measurement_quality=measured)


def _flags(t: _Trial) -> dict[str, Any]:
    """flags_<p>.json with AlgoPerf's flag names, so AlgoPerf's tools read our runs."""
    c = t.config
    return {
        "submission_path": str(c.submission_path),
        "workload": c.workload,
        "tuning_ruleset": c.ruleset,
        "tuning_search_space": str(c.tuning_search_space) if c.tuning_search_space else None,
        "num_tuning_trials": t.num_trials,
        "data_dir": str(c.data_dir),
        "imagenet_v2_data_dir": str(c.imagenet_v2_data_dir) if c.imagenet_v2_data_dir else None,
        "framework": c.framework,
        "experiment_dir": str(c.experiment_dir),
        "experiment_name": c.experiment_name,
        "save_checkpoints": c.save_checkpoints,
        "save_intermediate_checkpoints": c.save_intermediate_checkpoints,
        "resume_last_run": c.resume,
        "overwrite": c.overwrite,
        "max_global_steps": c.max_global_steps,
        "hparam_start_index": c.hparam_start_index,
        "hparam_end_index": c.hparam_end_index,
        "rng_seed": t.seed,
        "master_seed": c.seed,
        "rules_version": c.rules,
        "study": t.study,
    }


def workload_dir(config: RunConfig, study: int) -> Path:
    """``<experiment_dir>/<experiment_name>/study_<k>/<workload>_<framework>``."""
    return (config.experiment_dir / config.experiment_name / f"study_{study}"
            / f"{config.workload}_{config.framework}")


def _finished(trial_dir: Path) -> dict[str, Any] | None:
    """The run_end event of a trial that ended, or None if it never did."""
    path = trial_dir / "events.jsonl"
    if not path.exists():
        return None
    end = None
    for record in ev.read_events(path):
        if record["type"] == ev.RUN_END:
            end = record
        elif record["type"] in (ev.RESUME, ev.RUN_START):
            end = None
    return end


def validate(config: RunConfig) -> None:
    """Checks the run's inputs before anything is written (one UserError line each)."""
    registry.get_workload(config.workload)
    registry.check_framework(config.framework)
    registry.get_rules(config.rules)
    if config.ruleset not in ("external", "self"):
        raise UserError(f"unknown tuning ruleset {config.ruleset!r}; use 'external' or 'self'")
    if config.ruleset == "external" and config.tuning_search_space is None:
        raise UserError("the external ruleset needs --tuning-search-space FILE (a JSON search "
                        "space); use --tuning-ruleset self for a self-tuning submission")
    if config.ruleset == "self" and config.tuning_search_space is not None:
        raise UserError("a self-tuning run takes no --tuning-search-space; drop it or use "
                        "--tuning-ruleset external")
    if config.resume and config.overwrite:
        raise UserError("--resume and --overwrite contradict each other; pick one")
    for option, value, unset in (("--num-studies", config.num_studies, None),
                                 ("--num-tuning-trials", config.num_tuning_trials,
                                  "the rules version's trials per study"),
                                 ("--max-global-steps", config.max_global_steps, "no step cap")):
        if value is not None and value < 1:
            hint = f" (leave it out for {unset})" if unset else ""
            raise UserError(f"{option} must be at least 1, got {value}{hint}")
    for option, value in (("--study", config.study),
                          ("--hparam-start-index", config.hparam_start_index),
                          ("--hparam-end-index", config.hparam_end_index)):
        if value is not None and value < 0:
            what = "a study index" if option == "--study" else "a trial index"
            raise UserError(f"{option} must be {what}, 0 or more, got {value}")
    if config.ruleset == "external":
        _check_trial_slice(config)


def _check_trial_slice(config: RunConfig) -> None:
    """--hparam-start-index/--hparam-end-index (AlgoPerf's 0-based slice, end excluded) must
    select at least one of the study's trials."""
    start, end = config.hparam_start_index or 0, config.hparam_end_index
    num_trials = tuning.num_trials(config)
    if end is not None and start >= end:
        raise UserError(f"--hparam-start-index {start} is not before --hparam-end-index {end}: "
                        "no trial to run; the slice is 0-based with the end excluded (trial "
                        "i+1 is --hparam-start-index i --hparam-end-index i+1)")
    if start >= num_trials:
        raise UserError(f"--hparam-start-index {start} selects no trial: a study has "
                        f"{num_trials} trials (--num-tuning-trials); pass an index from 0 to "
                        f"{num_trials - 1} or raise --num-tuning-trials")


def _check_list_has_trials(config: RunConfig) -> None:
    """A list-form search space shorter than --hparam-start-index leaves nothing to run."""
    if config.ruleset != "external":
        return
    space = tuning.load_search_space(config.tuning_search_space)
    listed = len(space.entries)
    if space.is_list and (config.hparam_start_index or 0) >= listed:
        raise UserError(f"--hparam-start-index {config.hparam_start_index} selects no trial: "
                        f"the search space {config.tuning_search_space} lists {listed} "
                        f"configuration(s); pass an index below {listed}")


def search_space_sha256(config: RunConfig) -> str | None:
    """sha256 of the search space file's bytes (as the sweep plan records it); None under
    self-tuning. The file is checked first (one UserError line per problem)."""
    if config.ruleset != "external" or config.tuning_search_space is None:
        return None
    tuning.load_search_space(config.tuning_search_space)
    return file_sha256(config.tuning_search_space)


# run_start key, the option that sets it, the RunConfig field: what --resume must repeat.
_STARTED_WITH = (("workload", "--workload", "workload"),
                 ("framework", "--framework", "framework"),
                 ("ruleset", "--tuning-ruleset", "ruleset"),
                 ("rules_version", "--rules", "rules"),
                 ("master_seed", "--seed", "seed"),
                 ("max_global_steps", "--max-global-steps", "max_global_steps"))
_START_AGAIN = "start a new --experiment-dir"


def _recorded_starts(config: RunConfig) -> list[tuple[Path, dict[str, Any]]]:
    """(trial folder, run_start data) of every trial the run's studies already hold."""
    starts = []
    studies = [config.study] if config.study is not None else range(config.num_studies)
    for k in studies:
        for trial_dir in sorted(workload_dir(config, k).glob("trial_*")):
            path = trial_dir / ev.EVENTS_FILENAME
            if path.is_file():
                start = next((r["data"] for r in ev.read_events(path)
                              if r["type"] == ev.RUN_START), None)
                if start is not None:
                    starts.append((trial_dir, start))
    return starts


def check_resume(config: RunConfig, submission_sha256: str | None = None,
                 space_sha256: str | None = None) -> RunConfig:
    """--resume continues only the run it was started as: a workload, framework, ruleset,
    rules version, master seed, step cap, submission source or search space that differs from
    what the run's trials recorded in their run_start is one UserError line naming it (before
    anything is written). Returns ``config`` with the recorded master seed if --seed is unset.
    The digests default to those of ``config``'s submission and search space."""
    starts = _recorded_starts(config)
    if not starts:
        return config
    if config.seed is None:
        seeds = sorted({s["master_seed"] for _, s in starts if s.get("master_seed") is not None})
        if len(seeds) > 1:
            raise UserError(f"--resume: the trials of this run were started with different "
                            f"seeds ({', '.join(map(str, seeds))}), so they cannot continue as "
                            f"one run; {_START_AGAIN}")
        if seeds:
            config = dataclasses.replace(config, seed=seeds[0])
    if submission_sha256 is None:
        from algoperf.submission import resolve_path, source_digest

        submission_sha256 = source_digest(resolve_path(config.submission_path, config.framework))
    if space_sha256 is None:
        space_sha256 = search_space_sha256(config)
    for trial_dir, start in starts:
        for key, option, field in _STARTED_WITH:
            if key in start and start[key] != getattr(config, field):
                raise UserError(_resume_difference(option, start[key], getattr(config, field)))
        recorded = start.get("submission_sha256")
        if recorded is not None and recorded != submission_sha256:
            raise UserError(
                f"--resume: this run was started with another submission (source sha256 "
                f"{recorded[:12]}..., {config.submission_path} has {submission_sha256[:12]}...); "
                f"restore the one it was started with ({start.get('submission')}) or "
                f"{_START_AGAIN}")
        recorded = start.get("search_space_sha256")
        if "search_space_sha256" in start and recorded != space_sha256:
            was = _recorded_flag(trial_dir, "tuning_search_space")
            raise UserError(
                f"--resume: this run was started with another search space (sha256 "
                f"{str(recorded)[:12]}..., {config.tuning_search_space} has "
                f"{str(space_sha256)[:12]}...); pass the --tuning-search-space it was started "
                f"with{f' ({was})' if was else ''} or {_START_AGAIN}")
    return config


def _resume_difference(option: str, started: Any, given: Any) -> str:
    was = f"with {option} {started}" if started is not None else f"without {option}"
    if given is None:
        now = "without it"
    else:
        now = str(given) if started is not None else f"with {option} {given}"
    fix = f"pass {option} {started}" if started is not None else f"drop {option}"
    return f"--resume: this run was started {was}, not {now}; {fix} or {_START_AGAIN}"


def _recorded_flag(trial_dir: Path, name: str) -> Any:
    """A value of the trial's first flags_0.json, or None when it cannot be read."""
    try:
        return json.loads((trial_dir / trial_files.flags_filename(0)).read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None


def _prepare_dirs(config: RunConfig, studies: list[int]) -> None:
    """Refuses to reuse a workload folder that holds anything, unless resuming or overwriting.

    A folder holding no files (only empty folders, or nothing) counts as absent, and
    --overwrite empties a folder rather than removing it: `algoperf docker run` creates the
    trial folders a sandboxed run may write, inside folders it may not.
    """
    existing = [d for d in (workload_dir(config, k) for k in studies) if _holds_files(d)]
    if existing and not (config.resume or config.overwrite):
        raise UserError(
            f"experiment directory {existing[0]} already exists; pass --resume to continue it "
            "or --overwrite to delete it and start again"
        )
    if config.overwrite:
        for path in existing:
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds a file (or a symlink) anywhere below it."""
    for root, dirs, files in os.walk(folder):
        if files or any(os.path.islink(os.path.join(root, d)) for d in dirs):
            return True
    return False


def trial_dirs(config: RunConfig) -> list[Path]:
    """The trial folders a run of ``config`` writes (its studies' planned trials)."""
    planned = tuning.plan_trials(config, config.seed if config.seed is not None else 0)
    return [workload_dir(config, k) / f"trial_{i}" for k, trials in sorted(planned.items())
            for i, _ in trials]


def prepare_dirs(config: RunConfig) -> None:
    """`run`'s check of the run's workload folders, emptying them with --overwrite, for a
    caller that lays the folders out before the run (`algoperf docker run`)."""
    _prepare_dirs(config, sorted(tuning.plan_trials(config, config.seed if config.seed is not None
                                             else 0)))


def run(config: RunConfig, observer: Observer | None = None,
        workload_factory: Callable[[], spec.Workload] | None = None) -> list[TrialResult]:
    """Runs every trial of ``config``; returns their results (failed trials included).

    ``workload_factory`` builds the workload for each trial; by default the registry's
    implementation of ``config.workload`` (a custom workload must keep that name's targets).
    """
    observer = observer or NullObserver()
    validate(config)
    distributed.check_launch(config.framework)  # several GPUs need torchrun (PyTorch)
    machine = hardware.check_reference(config.reference, config.allow_nonreference, config.rules)
    info = registry.get_workload(config.workload)
    frameworks.setup(config.framework)
    ranks = distributed.ranks_of(config.framework)  # rank 0 writes; all decide alike
    submission = load_submission(config.submission_path, config.framework, root=submission_root(
        config.submission_path, config.submission_root))
    space_sha256 = search_space_sha256(config)
    if config.resume:  # before anything is written: continue only the run it was started as
        config = check_resume(config, submission.source_sha256, space_sha256)
    seed = config.seed if config.seed is not None else ranks.from_writer(
        lambda: int.from_bytes(os.urandom(4), "little") % (2**31 - 1))
    config = dataclasses.replace(config, seed=seed, experiment_dir=config.experiment_dir.resolve())
    _check_list_has_trials(config)
    plan = tuning.plan_trials(config, seed)
    if workload_factory is None:
        workload_factory = functools.partial(registry.import_workload, config.workload,
                                             config.framework)
    workload = workload_factory()
    budget = registry.get_rules(config.rules).budget(
        config.workload, config.ruleset, external_budget=workload.max_allowed_runtime_sec)
    bs = batch_size(submission, config.workload, info.base)
    eval_bs = workload.eval_batch_size
    if submission.get_eval_batch_size is not None:
        eval_bs = int(submission.get_eval_batch_size(config.workload))
    if config.framework == "pytorch":  # one device per process
        devices, what = ranks.world_size, "processes"
    else:
        devices, what = frameworks.device_count(config.framework), "visible devices"
    if bs % devices or eval_bs % devices:
        raise UserError(f"batch size {bs} and eval batch size {eval_bs} must be divisible by "
                        f"the {devices} {what}")
    # Fail on missing data before any directory is created.
    workload._build_input_queue(random_utils.PRNGKey(0), "train", str(config.data_dir), bs)
    ranks.from_writer(lambda: _prepare_dirs(config, sorted(plan)))  # the others wait for it

    results = []
    for study, trials in sorted(plan.items()):
        for trial_number, hyperparameters in trials:
            trial_dir = workload_dir(config, study) / f"trial_{trial_number}"
            ended, stored = ranks.from_writer(functools.partial(
                _open_trial, config, info, study, trial_number, trial_dir, hyperparameters))
            if ended is not None:
                results.append(ended)
                observer.trial_finished(results[-1])
                continue
            if stored is not None:
                hyperparameters = tuning.make_hyperparameters(stored)
            # A fresh workload per trial: no cached eval iterators or shapes carry over.
            workload = workload_factory()
            t = _Trial(config=config, submission=submission, workload=workload, info=info,
                       study=study, trial=trial_number, num_trials=len(trials),
                       trial_dir=trial_dir, hyperparameters=hyperparameters,
                       seed=tuning.trial_seed(seed, config.workload, study, trial_number),
                       budget=budget, batch_size=bs, eval_batch_size=eval_bs, hardware=machine,
                       ranks=ranks, devices=devices, search_space_sha256=space_sha256)
            observer.trial_started(study, trial_number, len(trials), hyperparameters)
            with ranks.writer_opens(functools.partial(ev.EventLog, trial_dir / "events.jsonl"),
                                    distributed.NullEventLog()) as log:
                results.append(train_once(t, log, observer))
            r = results[-1]
            ranks.check_same(f"how study {study} trial {trial_number} ended",
                             (r.status, r.reason, r.global_step, r.num_evals))
            observer.trial_finished(r)
    return results


def _open_trial(config: RunConfig, info: registry.WorkloadInfo, study: int, trial: int,
                trial_dir: Path, hyperparameters: Any) -> tuple[TrialResult | None,
                                                                 dict[str, Any] | None]:
    """Rank 0's look at a trial folder before training (made if missing): the trial's result
    if it already ended, else the hyperparameters stored by an earlier process (None: fresh;
    the drawn ones are then written to ``hparams.json``)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    end = _finished(trial_dir)
    if end is not None:
        return _result_from_log(study, trial, trial_dir, end, info), None
    if config.ruleset != "external":
        return None, None
    stored = trial_files.read_hparams(trial_dir)
    if stored is None:
        trial_files.write_hparams(trial_dir, hyperparameters)
    return None, stored


def _result_from_log(study, trial, trial_dir, end, info) -> TrialResult:
    """The result of a trial that finished in an earlier process, read back from its log."""
    data = end["data"]
    evals = [(r["data"]["global_step"], r["data"]["metrics"])
             for r in ev.read_events(trial_dir / "events.jsonl") if r["type"] == ev.EVAL]
    status = data.get("status", "completed")
    return TrialResult(
        study=study, trial=trial, trial_dir=trial_dir, status=status,
        reason=data.get("reason") or "stopped",
        time_to_target=_time_to_target(info, evals) if status == "completed" else math.inf,
        accumulated_submission_time=float(data.get("accumulated_submission_time", 0.0)),
        global_step=int(data.get("global_step", 0)), num_evals=len(evals),
        preemption_count=0, error=data.get("error"), quality=data.get(quality.RECORD_KEY))

