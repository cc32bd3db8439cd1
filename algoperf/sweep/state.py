"""Where each job of a sweep stands: pending, running, done, failed_submission,
failed_harness or interrupted.

The trial's own event log decides whether a job finished: a trial whose last ``run_start`` /
``resume`` is followed by ``run_end`` is over (as the runner's ``--resume`` sees it), and is
never run again; one that ended with an error is the submission's failure (scored as
infinite time). Otherwise the scheduler says whether the job is queued or running (Slurm's
queue, or a live local process), and the job's attempt records tell a job that never started
from one that was stopped (interrupted: Ctrl-C, SIGTERM, scancel, a dead node) or one that
failed through the harness or the machine (failed_harness: permission denied, disk full,
killed by a signal, an engine error, an error exit). Both continue from their checkpoints on
resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from algoperf.logs import events as ev
from algoperf.sweep import job_records
from algoperf.sweep.launch import log_path
from algoperf.sweep.plan import Job, Plan
from algoperf.workloads import registry

PENDING, RUNNING, DONE, FAILED_SUBMISSION, FAILED_HARNESS, INTERRUPTED = (
    "pending", "running", "done", "failed_submission", "failed_harness", "interrupted")
STATES = (PENDING, RUNNING, DONE, FAILED_SUBMISSION, FAILED_HARNESS, INTERRUPTED)
FAILED_STATES = (FAILED_SUBMISSION, FAILED_HARNESS)
# Exits that ask a job to stop (Ctrl-C, SIGTERM from the sweep, scancel, a time limit), as a
# signal's negative return code or a shell's or engine's 128 + signal number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclasses.dataclass(frozen=True)
class TrialLog:
    """What a trial's ``events.jsonl`` says about it."""

    started: float  # t_wall of the first run_start
    last: float  # t_wall of the last record
    end: dict[str, Any] | None  # the run_end data, if the trial is over
    global_step: int
    submission_time: float
    resumes: int  # continued from a checkpoint
    restarts: int  # started again from step 0 (no checkpoint to continue from)
    seed: int | None
    hyperparameters: dict[str, Any] | None
    harness_error: str | None = None  # the harness failure that stopped it since its last start


# Event lines start {"seq":N,"type":"...", (algoperf.logs.events' canonical encoding): the type
# is read without parsing the line, so a long run's many hardware samples cost next to nothing.
_TYPE = re.compile(rb'^\{"seq":\d+,"type":"([a-z_]+)"')
_NEEDED = {ev.RUN_START, ev.RESUME, ev.RUN_END, ev.EVAL, ev.CHECKPOINT, ev.ERROR}


def _trial_records(path: Path) -> list[dict[str, Any]]:
    """The records of ``path`` that say how far a trial got, and its last record."""
    content = path.read_bytes()
    lines = content[:content.rfind(b"\n")].split(b"\n") if b"\n" in content else []
    found = []
    for number, line in enumerate(lines, start=1):
        match = _TYPE.match(line)
        if match and match.group(1).decode() not in _NEEDED and number < len(lines):
            continue
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a damaged line: `algoperf verify` reports it, the status reads past it
    return found


def read_trial(trial_dir: Path) -> TrialLog | None:
    """The trial's log, or None if it never started training."""
    path = trial_dir / ev.EVENTS_FILENAME
    if not path.exists():
        return None
    records_ = _trial_records(path)
    starts = [r for r in records_ if r.get("type") == ev.RUN_START]
    if not starts:
        return None
    end, step, submission_time, resumes, harness_error = None, 0, 0.0, 0, None
    for r in records_:
        data = r.get("data") or {}
        if r["type"] in (ev.RUN_START, ev.RESUME):
            end = harness_error = None
            resumes += r["type"] == ev.RESUME
        elif r["type"] == ev.RUN_END:
            end = data
        elif r["type"] == ev.ERROR:
            if data.get("cause") == "harness":
                harness_error = str(data.get("message") or "a harness failure")
        elif r["type"] not in _NEEDED:
            continue
        step = int(data.get("global_step", step))
        if r["type"] == ev.EVAL:
            submission_time = float(data["metrics"].get("accumulated_submission_time", 0.0))
        elif r["type"] == ev.RUN_END:
            submission_time = float(data.get("accumulated_submission_time", submission_time))
    first = starts[0]["data"]
    return TrialLog(started=starts[0]["t_wall"], last=records_[-1]["t_wall"], end=end,
                    global_step=step, submission_time=submission_time, resumes=resumes,
                    restarts=len(starts) - 1, seed=first.get("seed"),
                    hyperparameters=first.get("hyperparameters"), harness_error=harness_error)


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """One job's state, why, and its times."""

    job: Job
    state: str
    detail: str
    trial: TrialLog | None
    attempts: tuple[job_records.Attempt, ...]
    log: Path
    live: bool = False  # queued or running now

    @property
    def rerun(self) -> bool:
        """Whether `sweep resume` runs this job: not while it is queued or running, never
        once its trial has ended (a submission's failure included); a harness or machine
        failure runs again."""
        if self.live or self.finished:
            return False
        return self.state in (PENDING, INTERRUPTED, FAILED_HARNESS)

    @property
    def finished(self) -> bool:
        """The trial ended (reached its target, its budget or its step cap, or failed)."""
        return self.trial is not None and self.trial.end is not None

    @property
    def started(self) -> float | None:
        times = [a.start["t"] for a in self.attempts[:1]] + (
            [self.trial.started] if self.trial else [])
        return min(times) if times else None

    @property
    def ended(self) -> float | None:
        if self.finished:
            ends = [a.end["t"] for a in self.attempts if a.end is not None]
            return max([self.trial.last, *ends])
        if self.state in FAILED_STATES and self.attempts and self.attempts[-1].end:
            return self.attempts[-1].end["t"]
        return None


def _alive_here(attempt: job_records.Attempt) -> bool:
    """A local attempt whose process still runs on this machine (not a reused pid)."""
    start = attempt.start
    if attempt.end is not None or start.get("executor") != "local":
        return False
    if start.get("host") != socket.gethostname() or "pid" not in start:
        return False
    try:
        process = psutil.Process(int(start["pid"]))
        return process.create_time() <= start["t"] + 1.0 and process.status() != "zombie"
    except (psutil.Error, ValueError):
        return False


def _mismatch(job: Job, trial: TrialLog) -> str | None:
    """The plan and the trained trial must agree on seed and hyperparameters."""
    if trial.seed is not None and trial.seed != job.seed:
        return f"trained with seed {trial.seed}, the plan says {job.seed}"
    if trial.hyperparameters != job.hyperparameters:
        return "trained with other hyperparameters than the plan's"
    return None


def job_status(plan: Plan, job: Job, queued: str | None = None) -> JobStatus:
    """The state of ``job``; ``queued`` is what the scheduler says ("pending"/"running")."""
    trial = read_trial(plan.trial_dir(job))
    attempts = tuple(job_records.read_attempts(plan.jobs_dir, job.label))
    log = log_path(plan.jobs_dir, job.label)

    def status(state: str, detail: str, live: bool = False) -> JobStatus:
        return JobStatus(job, state, detail, trial, attempts, log, live)

    if trial is not None and trial.end is not None:
        mismatch = _mismatch(job, trial)
        if mismatch:  # not the submission's doing; its trial ended, so resume cannot redo it
            return status(FAILED_HARNESS, mismatch)
        reason = trial.end.get("reason") or "stopped"
        if trial.end.get("status") == "failed":
            return status(FAILED_SUBMISSION, f"trial failed: {trial.end.get('error') or reason}")
        again = [f"{word} {n}x" for word, n in (("resumed", trial.resumes),
                                                 ("restarted", trial.restarts)) if n]
        return status(DONE, ", ".join([reason, *again]))
    last = attempts[-1] if attempts else None
    if queued == PENDING:
        return status(PENDING, "queued", live=True)
    if queued == RUNNING:
        slurm_job = last.start.get("slurm_job") if last and last.end is None else None
        return status(RUNNING, f"on {_where(last)}" + (f", slurm {slurm_job}" if slurm_job
                                                       else ""), live=True)
    if last is not None and _alive_here(last):
        return status(RUNNING, f"pid {last.start['pid']} on {_where(last)}", live=True)
    if trial is None and last is None:
        return status(PENDING, "not started")
    where = f"at step {trial.global_step}" if trial is not None else "before training"
    failure = _harness_failure(last, trial, log)
    if failure is None:
        code = last.exit_code if last else None
        return status(INTERRUPTED, f"stopped {where}"
                      + (f" (exit {code})" if code is not None else ""))
    return status(FAILED_HARNESS, f"{failure} {where}")


def _harness_failure(last: job_records.Attempt | None, trial: TrialLog | None,
                     log: Path) -> str | None:
    """Why a job that is not running and whose trial did not end failed through the harness
    or the machine, or None when it was stopped (interrupted)."""
    if last is None or last.end is None or last.end.get("stopped"):
        return None  # stopped by the sweep, or no record of its end (the sweep or node died)
    code = last.exit_code
    if code is None:
        return None
    signum = -code if code < 0 else code - 128 if code > 128 else None
    if signum in STOP_SIGNALS:
        return None
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}" + (f" (exit {code})" if code > 0 else "")
    if trial is not None and trial.harness_error:
        return trial.harness_error
    if code == 0:
        return "exit 0 without ending its trial"
    error = last_error_line(log)
    return f"exit {code}" + (f" ({error})" if error else f", see {log.name}")


def last_error_line(log: Path, tail_bytes: int = 16384, width: int = 300) -> str | None:
    """The last ``error: ...`` line the job's latest attempt wrote to its log."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    text = text.rsplit("=== algoperf sweep:", 1)[-1]
    errors = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("error: ")]
    if not errors:
        return None
    line = errors[-1].removeprefix("error: ")
    return line if len(line) <= width else line[:width - 3] + "..."


def _where(attempt: job_records.Attempt | None) -> str:
    return attempt.start.get("host", "?") if attempt else "?"


def job_statuses(plan: Plan, queue: Mapping[int, str] | None = None) -> list[JobStatus]:
    """Every job's status; ``queue`` maps job index to the scheduler's pending/running."""
    queue = queue or {}
    return [job_status(plan, job, queue.get(job.index)) for job in plan.jobs]


@dataclasses.dataclass(frozen=True)
class Completeness:
    """Whether the sweep's results can be scored, and what to tell the user."""

    complete: bool  # every trial ended
    scorable: bool  # every workload and study has at least one ended trial
    message: str


def completeness(plan: Plan, statuses: list[JobStatus]) -> Completeness:
    finished = sum(s.finished for s in statuses)
    score_cmd = f"algoperf score {plan.directory} --rules {plan.rules} --ruleset {plan.ruleset}"
    rules = registry.get_rules(plan.rules)
    grid = (*rules.base_workloads, *rules.held_out_workloads)
    official = (plan.num_studies >= rules.num_studies and set(grid) <= set(plan.workloads)
                and (plan.ruleset == "self" or plan.num_trials >= rules.num_trials))
    trials = rules.num_trials if plan.ruleset == "external" else 1
    note = "" if official else (
        f" (unofficial: the {plan.rules} grid is {len(grid)} workloads x "
        f"{rules.num_studies} studies x {trials} trial{'s' if trials > 1 else ''})")
    if finished == len(statuses):
        return Completeness(True, True, f"complete: all {finished} trial"
                                        f"{'s' if finished > 1 else ''} ended; score it "
                                        f"with `{score_cmd}`{note}")
    cells: dict[tuple[str, int], bool] = {}
    for s in statuses:
        key = (s.job.workload, s.job.study)
        cells[key] = cells.get(key, False) or s.finished
    missing = [f"{w} study {k}" for (w, k), ok in cells.items() if not ok]
    left = len(statuses) - finished
    if not missing:
        return Completeness(False, True, f"scorable but provisional: {left} of "
                                         f"{len(statuses)} trials have not ended; "
                                         f"`{score_cmd}` scores what is there{note}")
    return Completeness(False, False, f"not scorable yet: no trial of {missing[0]}"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                        + f" has ended ({left} of {len(statuses)} trials to go)")


def counts(statuses: list[JobStatus]) -> dict[str, int]:
    return {state: sum(s.state == state for s in statuses) for state in STATES}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
