"""``algoperf score``: score AlgoPerf-format logs and print or write the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import click

from algoperf.errors import UserError
from algoperf.scoring import diagnostics as dg
from algoperf.scoring.bootstrap import DEFAULT_REPLICATES
from algoperf.scoring.formats import FORMATS, render_many, render_table
from algoperf.scoring.outputs import write_all_outputs
from algoperf.scoring.scorer import RULESETS, score_leaderboards
from algoperf.workloads import registry


class StrictFailure(click.ClickException):
    """``--strict`` with warnings: the CLI exits with status 1 after listing them."""

    exit_code = 1


def read_held_out(path: Path) -> list[str]:
    """A held-out workloads file as AlgoPerf writes it: a JSON list of variant names."""
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"held-out workloads file {path} not found.") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read held-out workloads file {path}: {e}; expected a JSON "
                        'list such as ["ogbg_gelu", "wmt_post_ln"].') from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"held-out workloads file {path} must hold a JSON list of workload "
                        "names.")
    return names


@click.command("score")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rules", type=click.Choice(sorted(registry.RULES)), default=None,
              help="Rules version: workloads, studies, trials, budgets, held-out variants "
                   f"[default: the one the runs record, else {registry.DEFAULT_RULES}].")
@click.option("--ruleset", type=click.Choice(RULESETS), default=None,
              help="Tuning ruleset the runs followed [default: the one each leaderboard's "
                   "runs record, else external].")
@click.option("--held-out", "held_out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON list of held-out variants, overriding the rules version's sample.")
@click.option("--reference", metavar="SUBMISSION",
              help="Report speedups against this submission.")
@click.option("--strict", is_flag=True,
              help="Exit with status 1, listing every warning, if the input has any problem.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every output (tables, CSVs, JSON, plots) into this directory.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="What to print on stdout.")
@click.option("--bootstrap", "replicates", type=click.IntRange(min=0),
              default=DEFAULT_REPLICATES, show_default=True,
              help="Bootstrap replicates over studies for intervals and rank odds (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def score_command(paths: tuple[Path, ...], rules: str | None, ruleset: str | None,
                  held_out_file: Path | None, reference: str | None, strict: bool,
                  out_dir: Path | None, fmt: str, replicates: int, seed: int) -> None:
    """Score submissions from their logs, as AlgoPerf does.

    PATH is a submission's experiment directory (<submission>/study_<k>/
    <workload>_<framework>/trial_<i>/eval_measurements.csv), a directory of submissions, or
    one folder holding several such leaderboards (external_tuning/ and self_tuning/), each
    scored on its own under the ruleset its runs record.
    """
    held_out = read_held_out(held_out_file) if held_out_file else None
    reports = score_leaderboards(paths, rules=rules, ruleset=ruleset, held_out=held_out,
                                 reference=reference, bootstrap_replicates=replicates,
                                 seed=seed)
    if fmt == "table":
        from algoperf.terminal import console

        for k, report in enumerate(reports):
            if k:
                console().print()
            render_table(report, console())
    else:
        click.echo(render_many(reports, fmt), nl=False)
    if out_dir is not None:
        written = write_all_outputs(reports, out_dir)
        boards = (f" ({len(reports)} leaderboards: "
                  f"{', '.join(r.leaderboard for r in reports)})" if len(reports) > 1 else "")
        click.echo(f"wrote {len(written)} files to {out_dir}{boards}", err=True)
    warnings = [(r.leaderboard, w) for r in reports for w in r.warnings]
    if strict and warnings:
        for board, warning in warnings:
            click.echo(f"warning: {_where(board)}{warning.kind}: {warning}", err=True)
        raise StrictFailure(f"--strict: {len(warnings)} warnings (listed above)")
    for board, warning in warnings:  # scored under another ruleset than recorded: say so
        if warning.kind == dg.RULES_MISMATCH:
            click.echo(f"warning: {_where(board)}{warning.message}", err=True)
    if warnings and fmt != "table":
        click.echo(f"{len(warnings)} warnings (listed in the report; --strict fails on them)",
                   err=True)


def _where(board: str | None) -> str:
    return f"{board}: " if board else ""
