"""Running a plan: which jobs to launch, on which executor, and the record of each launch.

`sweep run` launches every job of a fresh sweep; `sweep resume` launches only the jobs that
are not done and not queued or running. Both go through :func:`launch`, which checks that the
submission and search space are the planned ones, writes each job's command line from its
RunConfig, and records the launch (executor, options, jobs, Slurm array id) in
``jobs/runs.jsonl``, from which `sweep status` and `sweep resume` take their defaults.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from algoperf.errors import UserError
from algoperf.sweep import job_records, local, state
from algoperf.sweep.launch import check_runtime, job_command
from algoperf.sweep.plan import Job, Plan, check_inputs_unchanged, job_config
from algoperf.sweep.slurm import Slurm, SlurmOptions, job_name, sbatch_options, write_script

EXECUTORS = ("local", "slurm")
SLURM_POLL_SEC = 2.0


@dataclasses.dataclass(frozen=True)
class ExecOptions:
    """How jobs run: executor, runtime (container or host), parallelism, extra job arguments,
    the algoperf command on the job's machine, and the Slurm options."""

    executor: str = "local"
    runtime: str = "docker"
    parallel: int | None = None  # local: default 1; slurm: default unlimited
    job_args: str = ""
    algoperf: tuple[str, ...] | None = None
    slurm: SlurmOptions = SlurmOptions()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecOptions:
        slurm = d.get("slurm") or {}
        slurm = SlurmOptions(**{**slurm, "sbatch_options": tuple(slurm.get("sbatch_options", ()))})
        algoperf = tuple(d["algoperf"]) if d.get("algoperf") else None
        return cls(executor=d.get("executor", "local"), runtime=d.get("runtime", "docker"),
                   parallel=d.get("parallel"), job_args=d.get("job_args", ""),
                   algoperf=algoperf, slurm=slurm)


def last_options(plan: Plan) -> ExecOptions | None:
    """The options of the latest `sweep run` / `sweep resume` of ``plan``."""
    runs = job_records.read_runs(plan.jobs_dir)
    return ExecOptions.from_dict(runs[-1]["options"]) if runs else None


def _slurm_arrays(plan: Plan) -> tuple[list[str], str | None]:
    """Array job ids of every Slurm launch, and the cluster config of the latest."""
    runs = [r for r in job_records.read_runs(plan.jobs_dir) if r.get("slurm_array")]
    conf = runs[-1]["options"]["slurm"].get("slurm_conf") if runs else None
    return [r["slurm_array"] for r in runs], conf


def job_statuses(plan: Plan) -> tuple[list[state.JobStatus], str | None]:
    """Every job's status, with the Slurm queue when the sweep used Slurm; the second value
    is a warning when the queue could not be read."""
    arrays, conf = _slurm_arrays(plan)
    queue: dict[int, str] | None = {}
    if arrays:
        try:
            queue = Slurm(conf).queue(job_name(plan), arrays)
        except UserError:
            queue = None
    warning = None if queue is not None else (
        "the Slurm controller does not answer: queued and running jobs cannot be told from "
        "interrupted ones")
    return state.job_statuses(plan, queue or {}), warning


@dataclasses.dataclass
class Launched:
    """What :func:`launch` did: the jobs, and the exit codes (local) or array id (Slurm)."""

    jobs: list[Job]
    exit_codes: dict[int, int] = dataclasses.field(default_factory=dict)
    slurm_array: str | None = None


def jobs_to_resume(statuses: Sequence[state.JobStatus]) -> list[Job]:
    return [s.job for s in statuses if s.rerun]


def check(plan: Plan, options: ExecOptions) -> None:
    """Everything that can be checked before a job is launched (one UserError line each)."""
    if options.executor not in EXECUTORS:
        raise UserError(f"unknown executor {options.executor!r}; use local or slurm")
    if options.parallel is not None and options.parallel < 1:
        raise UserError("--parallel must be at least 1")
    if options.slurm.gpus_per_job < 0:
        raise UserError("--gpus-per-job must be 0 or more")
    check_runtime(options.runtime)
    check_inputs_unchanged(plan)
    if options.executor == "slurm":
        Slurm(options.slurm.slurm_conf).check_partition(options.slurm.partition)


def launch(plan: Plan, jobs: Sequence[Job], options: ExecOptions, verb: str,
           on_start: Callable[[Job], None] | None = None,
           on_end: Callable[[Job, int], None] | None = None) -> Launched:
    """Launches ``jobs``: locally (returns when they ended) or as a Slurm array (returns once
    submitted). Raises :class:`local.Interrupted` if a local sweep is interrupted."""
    check(plan, options)
    algoperf = list(options.algoperf) if options.algoperf else None
    commands = [(job, job_command(job_config(plan, job), options.runtime, algoperf,
                                  options.job_args)) for job in jobs]
    record = {"t": time.time(), "verb": verb, "options": options.to_dict(),
              "jobs": [job.index for job in jobs]}
    if options.executor == "slurm":
        script = write_script(plan, commands)
        array = Slurm(options.slurm.slurm_conf).submit(script, sbatch_options(
            plan, [j.index for j in jobs], options.slurm, options.parallel))
        job_records.record_run(plan.jobs_dir, {**record, "slurm_array": array,
                                               "script": script.name})
        return Launched(list(jobs), slurm_array=array)
    job_records.record_run(plan.jobs_dir, record)
    by_index = dict((job.index, cmd) for job, cmd in commands)
    codes = local.run_jobs(plan, jobs, lambda job: by_index[job.index],
                           parallel=options.parallel or 1, on_start=on_start, on_end=on_end)
    return Launched(list(jobs), exit_codes=codes)


def wait_for_slurm(plan: Plan, array: str, conf: str | None,
                   on_poll: Callable[[dict[int, str]], None] | None = None,
                   timeout: float | None = None) -> None:
    """Returns when no task of ``array`` is left in the Slurm queue."""
    slurm = Slurm(conf)
    deadline = None if timeout is None else time.monotonic() + timeout
    misses = 0
    while True:
        queue = slurm.queue(job_name(plan), [array])
        if queue is None:
            misses += 1
            if misses * SLURM_POLL_SEC > 60:
                raise UserError("the Slurm controller stopped answering; the jobs may still "
                                f"run: check with `algoperf sweep status {plan.directory}`")
        else:
            misses = 0
            if on_poll:
                on_poll(queue)
            if not queue:
                return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"Slurm array {array} still has jobs after {timeout}s")
        time.sleep(SLURM_POLL_SEC)
