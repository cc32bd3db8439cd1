"""`algoperf run`: train a submission on a workload (its options: ``algoperf.run_options``;
`algoperf workloads` lives in ``algoperf.workloads.command``)."""

from __future__ import annotations

import math
import os
import sys

import click
from rich.table import Table

from algoperf import terminal
from algoperf.logs import quality
from algoperf.run_options import config_from_options, run_options
from algoperf.workloads import registry


def summary_table(results, info: registry.WorkloadInfo) -> Table:
    table = Table(title=f"{info.name}: time to validation target "
                        f"({info.target_metric_name} {'>=' if info.direction == 'max' else '<='}"
                        f" {info.validation_target_value:g})")
    for column in ("study", "trial", "status", "reason", "steps", "evals",
                   "submission time", "time to target", "steps to target", "median step",
                   "contention"):
        table.add_column(column)
    for r in results:
        ttt = "inf" if math.isinf(r.time_to_target) else f"{r.time_to_target:.2f}s"
        q = r.quality if isinstance(r.quality, dict) else {}
        to_target = q.get("steps_to_target")
        step = quality.number(q.get("median_step_sec"))
        table.add_row(str(r.study), str(r.trial), r.status, r.reason, str(r.global_step),
                      str(r.num_evals), f"{r.accumulated_submission_time:.2f}s", ttt,
                      "-" if to_target is None else str(to_target),
                      "-" if step is None else f"{step * 1e3:.3g} ms",
                      quality.assess(r.quality).label)
    return table


def contention_lines(results) -> list[str]:
    """One line per contended trial (algoperf.logs.quality's rule): its time is noise."""
    lines = []
    for r in results:
        found = quality.assess(r.quality)
        if found.contended:
            lines.append(f"contended: study {r.study} trial {r.trial}: "
                         f"{'; '.join(found.reasons)}; its time to target measures the machine "
                         "as much as the submission")
    return lines


def hardware_lines(results) -> list[str]:
    """What the trials' event logs say about the hardware (the reference check and
    throttling): one line for all trials when they agree, else one line per distinct finding
    naming its trials."""
    from algoperf.hardware import HOST_SAMPLES_ENV, throttle_summary
    from algoperf.logs.events import RESUME, RUN_START, read_events

    host_samples = os.environ.get(HOST_SAMPLES_ENV) == "1"  # sampled outside this process

    findings: dict[str, list[str]] = {}
    for r in results:
        path = r.trial_dir / "events.jsonl"
        if not path.exists():
            continue
        records = read_events(path)
        starts = [e["data"] for e in records if e["type"] in (RUN_START, RESUME)]
        if starts and starts[-1].get("fingerprint") is not None:
            start = starts[-1]
            if start.get("reference") is None:
                status = "no --reference: not certifiable"
            elif start.get("certifiable"):
                status = f"matches {start['reference']}"
            else:
                status = f"NOT CERTIFIABLE: differs from {start['reference']}"
            samples = ("samples taken by the host" if host_samples
                       else throttle_summary(records).text())
            finding = f"{status}; {samples}"
            findings.setdefault(finding, []).append(f"study {r.study} trial {r.trial}")
    if len(findings) == 1:
        ((finding, where),) = findings.items()
        which = where[0] if len(where) == 1 else f"all {len(where)} trials"
        return [f"hardware, {which}: {finding}"]
    return [f"hardware, {', '.join(where)}: {finding}" for finding, where in findings.items()]


def drawn_seed_line(results) -> str | None:
    """The master seed the runner drew at random (recorded in run_start), so the run can be
    repeated; None when no trial recorded one."""
    from algoperf.logs.events import RUN_START, read_events

    for r in results:
        path = r.trial_dir / "events.jsonl"
        if path.exists():
            for e in read_events(path):
                if e["type"] == RUN_START and e["data"].get("master_seed") is not None:
                    seed = e["data"]["master_seed"]
                    return f"seed {seed} drawn at random (--seed {seed} repeats this run)"
    return None


@click.command()
@run_options
@click.pass_context
def run(ctx: click.Context, **options) -> None:
    """Train a submission on a workload with AlgoPerf's clock, evals and stopping rules."""
    from algoperf import distributed
    from algoperf.progress import LiveProgress
    from algoperf.runner import run as run_trials

    config = config_from_options(debug=ctx.obj.get("debug", False), **options)
    distributed.check_launch(config.framework, sys.argv[1:])  # names the torchrun command
    if distributed.process_rank() != 0:  # torchrun: rank 0 shows progress and the summary
        results = run_trials(config)  # pytorch_init leaves the process group at exit
        sys.exit(1 if any(r.status != "completed" for r in results) else 0)
    console = terminal.console()
    title = (f"{config.experiment_name} on {config.workload} ({config.framework}, "
             f"{config.ruleset} tuning, rules {config.rules})")
    with LiveProgress(title) as progress:
        results = run_trials(config, progress)
    console.print(summary_table(results, registry.get_workload(config.workload)))
    for line in hardware_lines(results) + contention_lines(results):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line each
    if options.get("seed") is None and not config.resume and (line := drawn_seed_line(results)):
        console.print(line, highlight=False)
    # In `algoperf docker run`'s container, the host's path of the logs is the one to show.
    host = os.environ.get("ALGOPERF_HOST_RUN_DIR")
    console.print(f"logs: {host or config.experiment_dir / config.experiment_name}",
                  highlight=False, soft_wrap=True)
    failed = [r for r in results if r.status != "completed"]
    if failed:
        for r in failed:
            click.echo(f"error: study {r.study} trial {r.trial} failed: {r.error}", err=True)
        sys.exit(1)
