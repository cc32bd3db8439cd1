"""The local executor: runs a sweep's jobs as processes on this machine, ``parallel`` at a time.

Each job runs in its own session with its output appended to its log; the executor records
each attempt's start (with the pid) and end (with the exit code). Ctrl-C (or SIGTERM) stops
every running job with SIGTERM, which the runner survives as a preemption: those jobs show as
interrupted and `sweep resume` continues them from their checkpoints.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from algoperf.submission import JOB_ENVIRONMENT
from algoperf.sweep import job_records
from algoperf.sweep.launch import log_path
from algoperf.sweep.plan import Job, Plan

POLL_SEC = 0.1
STOP_GRACE_SEC = 20.0


class Interrupted(Exception):
    """The sweep was stopped (Ctrl-C or SIGTERM); the running jobs were stopped with it."""


def _start(plan: Plan, job: Job, command: list[str]) -> subprocess.Popen:
    log = log_path(plan.jobs_dir, job.label)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"=== algoperf sweep: {job.label} {job.name} on {socket.gethostname()} at "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n=== {' '.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **JOB_ENVIRONMENT})
    job_records.append_record(job_records.attempts_path(plan.jobs_dir, job.label), {
        "event": "start", "t": time.time(), "host": socket.gethostname(), "pid": process.pid,
        "executor": "local"})
    return process


def _finish(plan: Plan, job: Job, code: int, stopped: bool = False) -> None:
    """Records the attempt's end; ``stopped``: the sweep stopped it (Ctrl-C), so it shows as
    interrupted whatever its exit code."""
    record = {"event": "end", "t": time.time(), "exit_code": code}
    job_records.append_record(job_records.attempts_path(plan.jobs_dir, job.label),
                          {**record, "stopped": True} if stopped else record)


def _stop(running: dict[int, tuple[Job, subprocess.Popen]]) -> None:
    """SIGTERM to every job's process group, then SIGKILL to those that outlive the grace."""
    for _, process in running.values():
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_SEC
    for _, process in running.values():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_jobs(plan: Plan, jobs: Sequence[Job], command: Callable[[Job], list[str]],
             parallel: int = 1, on_start: Callable[[Job], None] | None = None,
             on_end: Callable[[Job, int], None] | None = None) -> dict[int, int]:
    """Runs ``jobs`` with at most ``parallel`` at a time; returns job index -> exit code.

    Raises :class:`Interrupted` after stopping the running jobs if the sweep is interrupted.
    """
    waiting = collections.deque(jobs)
    running: dict[int, tuple[Job, subprocess.Popen]] = {}
    codes: dict[int, int] = {}

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main else None
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                job = waiting.popleft()
                running[job.index] = (job, _start(plan, job, command(job)))
                if on_start:
                    on_start(job)
            time.sleep(POLL_SEC)
            for index, (job, process) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[index]
                _finish(plan, job, code)
                codes[index] = code
                if on_end:
                    on_end(job, code)
    except KeyboardInterrupt:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the stop
        _stop(running)
        for job, process in running.values():
            _finish(plan, job, process.returncode, stopped=True)
        raise Interrupted(f"stopped {len(running)} running job(s)") from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return codes
