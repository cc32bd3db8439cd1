"""`algoperf sweep plan|run|status|resume`: the study grid, locally or on Slurm, resumable."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Table

from algoperf import submission_check, terminal
from algoperf.check_command import NO_CHECK
from algoperf.errors import UserError
from algoperf.sweep import execute, state
from algoperf.sweep.execute import ExecOptions
from algoperf.sweep.launch import DEFAULT_RUNTIME, RUNTIMES, parse_algoperf
from algoperf.sweep.local import Interrupted
from algoperf.sweep.plan import Job, Plan, load_plan, make_plan, write_plan
from algoperf.sweep.slurm import SlurmOptions
from algoperf.workloads import registry

STATE_STYLE = {state.DONE: "green", state.FAILED_SUBMISSION: "red",
               state.FAILED_HARNESS: "magenta", state.INTERRUPTED: "yellow",
               state.RUNNING: "cyan", state.PENDING: "dim"}


@click.group("sweep", cls=terminal.CommandGroup)
def sweep() -> None:
    """Run the whole study grid (workloads x studies x trials), locally or on Slurm."""


# --- plan -----------------------------------------------------------------------------------


@sweep.command("plan")
@click.option("--submission", "submission_path", required=True, type=click.Path(path_type=Path),
              help="Submission .py file, or its folder (submission_<framework>.py).")
@click.option("--submission-root", type=click.Path(path_type=Path), default=None,
              help="Repository root every job puts on sys.path (imports by repository path); "
                   "default: the current directory when it holds the submission.")
@click.option("--tuning-search-space", "--search-space", "search_space",
              type=click.Path(path_type=Path), default=None,
              help="JSON search space (external tuning); default: the submission folder's "
                   "tuning_search_space.json.")
@click.option("--framework", type=click.Choice(registry.FRAMEWORKS), default=None,
              help="Default: the one the submission file's name says.")
@click.option("--rules", type=click.Choice(sorted(registry.RULES)),
              default=registry.DEFAULT_RULES, show_default=True,
              help="Rules version: workloads, budgets, studies, trials.")
@click.option("--tuning-ruleset", "--ruleset", "ruleset", type=click.Choice(["external", "self"]),
              default="external", show_default=True,
              help="External tuning (a search space, several trials) or self-tuning.")
@click.option("--workloads", multiple=True,
              help="Comma-separated workloads; default: those of the rules version's grid "
                   "(base and held-out) that this installation implements.")
@click.option("--num-studies", "--studies", "num_studies", type=int, default=None,
              help="Studies per workload; default: the rules version's.")
@click.option("--num-tuning-trials", "--trials", "num_trials", type=int, default=None,
              help="Trials per study (external tuning); default: the rules version's.")
@click.option("--seed", type=int, default=None,
              help="Master seed; every trial's seed and the Halton order derive from it. "
                   "Random (and printed) if unset.")
@click.option("--max-global-steps", type=int, default=None,
              help="Stop every trial after this many steps (for trial runs of the grid).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Prepared datasets; default: ~/data on the machine each job runs on.")
@click.option("--save-checkpoints/--no-save-checkpoints", "--checkpoints/--no-checkpoints",
              "save_checkpoints", default=True, show_default=True,
              help="Without checkpoints an interrupted job starts its trial again from step 0.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Sweep directory; its name is the submission's name on a leaderboard.")
@NO_CHECK
def plan_command(submission_path: Path, submission_root: Path | None,
                 search_space: Path | None, framework: str | None,
                 rules: str, ruleset: str, workloads: tuple[str, ...], num_studies: int | None,
                 num_trials: int | None, seed: int | None, max_global_steps: int | None,
                 data_dir: Path | None, save_checkpoints: bool, out: Path, check: bool) -> None:
    """Plan every job of the grid, with its hyperparameters and seed, into OUT/plan.json.
    The submission is checked against AlgoPerf's rules first (`algoperf check`); the jobs,
    whose submission cannot change after planning, do not check it again."""
    names = tuple(w.strip() for text in workloads for w in text.split(",") if w.strip())
    console = terminal.console()
    if not names:
        names = _implemented_grid(rules)
    drawn = seed is None
    if drawn:
        seed = int.from_bytes(os.urandom(4), "little") % (2**31 - 1)
    plan = make_plan(out, submission_path, rules=rules, ruleset=ruleset, framework=framework,
                     search_space=search_space, workloads=names or None,
                     num_studies=num_studies, num_trials=num_trials, seed=seed,
                     max_global_steps=max_global_steps, save_checkpoints=save_checkpoints,
                     data_dir=data_dir, submission_root=submission_root)
    if check:  # violations refuse; warnings are `algoperf check`'s to show
        submission_check.enforce(plan.submission, plan.framework, ruleset=plan.ruleset,
                                 rules=plan.rules, search_space=plan.search_space)
    written = write_plan(plan)
    if drawn:
        console.print(f"seed {seed} drawn at random (--seed {seed} plans this grid again)",
                      highlight=False)
    console.print(f"{'planned' if written else 'unchanged (the same plan is already there)'}: "
                  f"{len(plan.jobs)} jobs = {len(plan.workloads)} workloads x "
                  f"{plan.num_studies} studies x {plan.num_trials} trials "
                  f"({plan.ruleset} tuning, rules {plan.rules}, {plan.framework}), plan "
                  f"{plan.plan_id[:12]}", highlight=False)
    missing = [w for w in plan.workloads if not registry.get_workload(w).implemented]
    if missing:
        console.print(f"note: not implemented in this installation: {', '.join(missing)}; "
                      "their jobs fail until they are", highlight=False)
    console.print(f"plan: {plan.directory / 'plan.json'}\nnext: algoperf sweep run "
                  f"{plan.directory}", highlight=False)


def _implemented_grid(rules: str) -> tuple[str, ...]:
    """The rules version's workloads (base, then held-out) that this installation implements;
    a UserError listing the implemented ones when it implements none of them."""
    r = registry.get_rules(rules)
    grid = (*r.base_workloads, *r.held_out_workloads)
    found = tuple(w for w in grid if registry.get_workload(w).implemented)
    if not found:
        here = ", ".join(registry.implemented())
        raise UserError(f"none of the {rules} workloads is implemented in this installation; "
                        f"pass --workloads from those that are: {here}")
    return found


# --- run / resume ---------------------------------------------------------------------------


def _exec_options(f):
    """Options shared by run and resume; unset ones (None) mean "as before" for resume."""
    options = [
        click.option("--executor", type=click.Choice(execute.EXECUTORS), default=None,
                     help="Where jobs run [run: local]."),
        click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
                     help=f"docker: `algoperf docker run` (sandboxed); host: `algoperf run` "
                          f"[run: {DEFAULT_RUNTIME}]."),
        click.option("--parallel", type=int, default=None,
                     help="Jobs at once [local: 1; slurm: no limit]."),
        click.option("--job-args", default=None,
                     help="More arguments for every job's command, e.g. '--reference "
                          "v100x8' or docker run's options."),
        click.option("--algoperf", "algoperf_cmd", default=None,
                     help="The command that runs algoperf on the job's machine "
                          "[this interpreter: python -m algoperf]."),
        click.option("--partition", default=None, help="Slurm partition."),
        click.option("--gpus-per-job", type=int, default=None, help="Slurm: GPUs per job."),
        click.option("--time", "time_limit", default=None,
                     help="Slurm time limit per job, e.g. 24:00:00."),
        click.option("--sbatch-option", "sbatch_options", multiple=True,
                     help="Another sbatch option, passed through (repeatable)."),
        click.option("--slurm-conf", default=None, type=click.Path(path_type=Path),
                     help="The cluster's slurm.conf [Slurm's default, or SLURM_CONF]."),
        click.option("--wait/--no-wait", default=False, show_default=True,
                     help="Slurm: wait until the array has left the queue."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _merge(base: ExecOptions, executor, runtime, parallel, job_args, algoperf_cmd, partition,
           gpus_per_job, time_limit, sbatch_options, slurm_conf) -> ExecOptions:
    """``base`` with every option the user gave replacing its value."""
    s = base.slurm
    slurm = SlurmOptions(
        partition=partition if partition is not None else s.partition,
        gpus_per_job=gpus_per_job if gpus_per_job is not None else s.gpus_per_job,
        time_limit=time_limit if time_limit is not None else s.time_limit,
        sbatch_options=tuple(sbatch_options) if sbatch_options else s.sbatch_options,
        slurm_conf=str(slurm_conf.expanduser().resolve()) if slurm_conf is not None
        else s.slurm_conf)
    algoperf = parse_algoperf(algoperf_cmd)
    return ExecOptions(
        executor=executor or base.executor, runtime=runtime or base.runtime,
        parallel=parallel if parallel is not None else base.parallel,
        job_args=job_args if job_args is not None else base.job_args,
        algoperf=tuple(algoperf) if algoperf else base.algoperf, slurm=slurm)


def _launch(plan: Plan, jobs: list[Job], options: ExecOptions, verb: str, wait: bool) -> None:
    execute.check(plan, options)
    console = terminal.console()
    if options.executor == "slurm":
        where = f"Slurm, partition {options.slurm.partition or '(default)'}"
    else:
        where = f"this machine, {options.parallel or 1} at a time"
    console.print(f"{verb}: {len(jobs)} of {len(plan.jobs)} jobs on {where} "
                  f"({'container' if options.runtime == 'docker' else 'host'})",
                  highlight=False)
    if options.executor == "slurm":
        launched = execute.launch(plan, jobs, options, verb)
        console.print(f"submitted Slurm array {launched.slurm_array} "
                      f"(logs: {plan.jobs_dir / 'logs'})", highlight=False)
        if wait:
            _wait_slurm(plan, launched.slurm_array, options, len(jobs))
            _report(plan, console)
        else:
            console.print(f"watch it with: algoperf sweep status {plan.directory}",
                          highlight=False)
        return
    progress = _progress(len(jobs))
    task = progress.add_task(verb, total=len(jobs))

    def on_end(job: Job, code: int) -> None:
        s = state.job_status(plan, job)
        progress.advance(task)
        progress.console.print(f"  {job.label} {job.name}: [{STATE_STYLE[s.state]}]{s.state}"
                               f"[/] ({s.detail})", highlight=False)

    try:
        with progress:
            execute.launch(plan, jobs, options, verb, on_end=on_end)
    except Interrupted as e:
        console.print(f"interrupted: {e}; continue with `algoperf sweep resume "
                      f"{plan.directory}`", highlight=False)
        sys.exit(130)
    _report(plan, console)


def _progress(total: int) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=terminal.console(stderr=True))


def _wait_slurm(plan: Plan, array: str, options: ExecOptions, total: int) -> None:
    progress = _progress(total)
    task = progress.add_task(f"slurm array {array}", total=total)
    with progress:
        execute.wait_for_slurm(
            plan, array, options.slurm.slurm_conf,
            on_poll=lambda queue: progress.update(task, completed=total - len(queue)))


def _report(plan: Plan, console: Console) -> None:
    statuses, warning = execute.job_statuses(plan)
    console.print(status_table(plan, statuses))
    _print_summary(plan, statuses, warning, console)
    if any(s.state in state.FAILED_STATES for s in statuses):
        sys.exit(1)


@sweep.command("run")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_exec_options
def run_command(directory: Path, wait: bool, **given) -> None:
    """Run every job of the plan in DIRECTORY (local processes or a Slurm job array)."""
    plan = load_plan(directory)
    statuses, _ = execute.job_statuses(plan)
    started = [s for s in statuses if s.attempts or s.trial is not None]
    if started:
        raise UserError(f"{plan.directory} has been run before ({len(started)} jobs started); "
                        f"continue it with `algoperf sweep resume {plan.directory}`")
    options = _merge(ExecOptions(runtime=DEFAULT_RUNTIME), **given)
    _launch(plan, list(plan.jobs), options, "run", wait)


@sweep.command("resume")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_exec_options
def resume_command(directory: Path, wait: bool, **given) -> None:
    """Run only what is not done: interrupted jobs and harness or machine failures continue
    from their checkpoints; finished jobs (a submission's failure included) never run again;
    queued and running ones are left alone. Options default to the last run's."""
    plan = load_plan(directory)
    statuses, warning = execute.job_statuses(plan)
    if warning:
        raise UserError(f"{warning}; resume when it answers (or point at it with "
                        "--slurm-conf PATH)")
    jobs = execute.jobs_to_resume(statuses)
    console = terminal.console()
    live = sum(s.live for s in statuses)
    if not jobs:
        console.print(f"nothing to resume: {sum(s.finished for s in statuses)} of "
                      f"{len(statuses)} trials ended"
                      + (f", {live} queued or running" if live else ""), highlight=False)
        return
    if live:
        console.print(f"leaving {live} queued or running jobs alone", highlight=False)
    base = execute.last_options(plan) or ExecOptions(runtime=DEFAULT_RUNTIME)
    _launch(plan, jobs, _merge(base, **given), "resume", wait)


# --- status ---------------------------------------------------------------------------------


def _clock(t: float | None) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def status_table(plan: Plan, statuses: list[state.JobStatus]) -> Table:
    table = Table(title=f"sweep {plan.directory.name}: {plan.ruleset} tuning, rules "
                        f"{plan.rules}, {plan.framework}, plan {plan.plan_id[:12]}")
    for column in ("job", "workload", "study", "trial", "state", "detail", "started", "time",
                   "step", "submission time", "attempts"):
        table.add_column(column, justify="right" if column in ("study", "trial", "step",
                                                                "attempts") else "left")
    for s in statuses:
        now = time.time() if s.state == state.RUNNING else None
        end = s.ended or now or (s.trial.last if s.trial else None)
        table.add_row(
            s.job.label, s.job.workload, str(s.job.study), str(s.job.trial),
            f"[{STATE_STYLE[s.state]}]{s.state}[/]", s.detail, _clock(s.started),
            state.fmt_duration(end - s.started if end and s.started else None),
            str(s.trial.global_step) if s.trial else "-",
            f"{s.trial.submission_time:.1f}s" if s.trial else "-", str(len(s.attempts)))
    return table


def _print_summary(plan: Plan, statuses: list[state.JobStatus], warning: str | None,
                   console: Console) -> None:
    counts = state.counts(statuses)
    finished = sum(s.finished for s in statuses)
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=len(statuses), completed=finished, width=40),
                 f"{finished}/{len(statuses)} ended  " + "  ".join(
                     f"[{STATE_STYLE[k]}]{k} {v}[/]" for k, v in counts.items()))
    console.print(grid)
    if warning:
        console.print(f"warning: {warning}", highlight=False)
    console.print(state.completeness(plan, statuses).message, highlight=False)


def status_json(plan: Plan, statuses: list[state.JobStatus], warning: str | None) -> dict:
    done = state.completeness(plan, statuses)
    return {
        "plan_id": plan.plan_id, "directory": str(plan.directory),
        "complete": done.complete, "scorable": done.scorable, "message": done.message,
        "warning": warning, "counts": state.counts(statuses),
        "jobs": [{"label": s.job.label, "name": s.job.name, "workload": s.job.workload,
                  "study": s.job.study, "trial": s.job.trial, "state": s.state,
                  "detail": s.detail, "started": s.started, "ended": s.ended,
                  "global_step": s.trial.global_step if s.trial else None,
                  "submission_time": s.trial.submission_time if s.trial else None,
                  "resumes": s.trial.resumes if s.trial else 0, "attempts": len(s.attempts),
                  "log": str(s.log)} for s in statuses],
    }


@sweep.command("status")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the states as JSON.")
def status_command(directory: Path, as_json: bool) -> None:
    """Every job's state (pending, running, done, failed_submission, failed_harness,
    interrupted), why, its times, and whether the results can be scored."""
    plan = load_plan(directory)
    statuses, warning = execute.job_statuses(plan)
    if as_json:
        click.echo(json.dumps(status_json(plan, statuses, warning), indent=1))
        return
    console = terminal.console()
    console.print(status_table(plan, statuses))
    _print_summary(plan, statuses, warning, console)
