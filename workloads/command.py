"""`algoperf workloads` (list the registry's workloads under a rules version) and
`algoperf workloads check NAME` (build one on synthetic data, step it, evaluate it).

Framework-free at import: the listing reads only the registry, and a check imports JAX or
PyTorch when it runs (``algoperf.workloads.check``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from algoperf import terminal
from algoperf.workloads import registry


@click.group(cls=terminal.CommandGroup, invoke_without_command=True)
@click.option("--rules", default=registry.DEFAULT_RULES, show_default=True,
              type=click.Choice(sorted(registry.RULES)))
@click.option("--all", "show_all", is_flag=True, help="Include variants.")
@click.pass_context
def workloads(ctx: click.Context, rules: str, show_all: bool) -> None:
    """List workloads with their targets and budgets under a rules version.

    `algoperf workloads check NAME` builds workload NAME on synthetic data, times a training
    step and evaluates once.
    """
    if ctx.invoked_subcommand is None:
        terminal.console().print(listing(rules, show_all))


def listing(rules: str, show_all: bool) -> Table:
    """The table of `algoperf workloads`: every base (or every) workload under ``rules``."""
    r = registry.get_rules(rules)
    table = Table(title=f"workloads, rules {rules}: {r.description}")
    for column in ("workload", "dataset", "target", "budget (s)", "step hint",
                   "eval period (s)", "implemented"):
        table.add_column(column)
    for name, info in registry.WORKLOADS.items():
        if info.is_variant and not show_all:
            continue
        op = ">=" if info.direction == registry.MAXIMIZE else "<="
        table.add_row(name, info.dataset,
                      f"{info.target_metric_name} {op} {info.validation_target_value:g}",
                      f"{r.budget(name):g}", str(r.step_hint(name)),
                      f"{info.eval_period_time_sec:g}", "yes" if info.implemented else "")
    return table


@workloads.command("check")
@click.argument("name")
@click.option("--framework", type=click.Choice(registry.FRAMEWORKS), default=None,
              help="Check only this framework; default: both.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line per framework instead of the report.")
@click.option("--submission", "submission_path", type=click.Path(path_type=Path),
              default=None, help="The submission to step (file or folder); default: the "
              "NAdamW baseline of this checkout.")
@click.pass_context
def check_command(ctx: click.Context, name: str, framework: str | None, as_json: bool,
                  submission_path: Path | None) -> None:
    """Build workload NAME on a small synthetic dataset in its real prepared format, compare
    its parameter count with the registry's, time a training step of the NAdamW baseline
    (after a warm-up step) and evaluate once. Exit 0 when everything holds, 1 when a check
    fails."""
    from algoperf.workloads import check

    check.checkable(name)  # bad names fail before anything is written
    err = terminal.console(stderr=True)

    def progress(message: str) -> None:
        err.print(message, style="dim", markup=False, highlight=False)

    frameworks = [framework] if framework else list(registry.FRAMEWORKS)
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    results = []
    submission_path = submission_path or check.REFERENCE_SUBMISSION
    for result in check.check(name, frameworks, progress, debug=debug,
                              submission_path=submission_path):
        results.append(result)
        if as_json:
            click.echo(json.dumps(result.to_json()))
    if not as_json:
        terminal.console().print(report(results))
        for result in results:
            for problem in result.problems:
                terminal.console().print(f"FAILED ({result.framework}): {problem}",
                                         markup=False, highlight=False)
    if not all(result.ok for result in results):
        sys.exit(1)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def report(results) -> Table:
    """The human-readable report: one column per framework."""
    first = results[0]
    info = registry.get_workload(first.workload)
    table = Table(title=f"algoperf workloads check {first.workload}",
                  caption=f"data: {first.data}; submission: {first.submission}")
    table.add_column("")
    for result in results:
        table.add_column(result.framework)

    def row(label: str, cell) -> None:
        table.add_row(label, *(cell(r) for r in results))

    def params(r) -> str:
        if r.param_count is None:
            return "-"
        same = "=" if r.param_count == r.expected_param_count else "!="
        return f"{r.param_count:,} {same} registry {r.expected_param_count:,}"

    def batch(size, source) -> str:
        return "-" if size is None else f"{size} ({source})"

    row("parameters", params)
    row("batch size", lambda r: batch(r.batch_size, r.batch_size_source))
    row("first step (warm-up; JAX compiles)", lambda r: _seconds(r.first_step_s))
    row("train step", lambda r: _seconds(r.train_step_s))
    row("training loss", lambda r: ", ".join(f"{_number(loss)} (step {step})"
                                             for step, loss in r.losses) or "-")
    row("eval batch size", lambda r: batch(r.eval_batch_size, r.eval_batch_size_source))
    row("evaluation", lambda r: _seconds(r.eval_s))
    for split in ("train", "validation", "test"):
        for metric in info.metrics:
            key = f"{split}/{metric}"
            row(key, lambda r, key=key: _number(r.eval_metrics.get(key)))
    row("result", lambda r: "[green]ok[/green]" if r.ok else "[red]FAILED[/red]")
    return table
