"""``algoperf report``: the leaderboard of some runs as a static HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from algoperf.scoring.bootstrap import DEFAULT_REPLICATES
from algoperf.scoring.scorer import RULESETS
from algoperf.workloads import registry


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write index.html into (created if needed).")
@click.option("--rules", type=click.Choice(sorted(registry.RULES)), default=None,
              help="Rules version [default: the one the runs record, else "
                   f"{registry.DEFAULT_RULES}].")
@click.option("--ruleset", type=click.Choice(RULESETS), default=None,
              help="Tuning ruleset [default: the one each leaderboard's runs record, else "
                   "external].")
@click.option("--bootstrap", "replicates", type=click.IntRange(min=0),
              default=DEFAULT_REPLICATES, show_default=True,
              help="Bootstrap replicates over studies for intervals and rank odds (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path),
              help="Trusted public key (.pub file or a folder of them) to verify signed runs "
                   "with; repeatable.")
def report_command(runs: tuple[Path, ...], out_dir: Path, rules: str | None,
                   ruleset: str | None, replicates: int, seed: int,
                   pubkeys: tuple[Path, ...]) -> None:
    """Write the leaderboard of RUNS as one self-contained HTML page (no network needed).

    RUNS are what `algoperf score` takes: experiment directories, directories of
    submissions, or a folder holding several leaderboards. The page shows the scores with
    bootstrap intervals and rank odds, the performance profiles, time to target per workload
    with steps and step time, each trial's curve, the warnings and, for signed runs, the
    verification verdict.
    """
    from algoperf.scoring.html import write_report

    path = write_report(list(runs), out_dir, rules=rules, ruleset=ruleset,
                        bootstrap_replicates=replicates, seed=seed, pubkeys=pubkeys)
    click.echo(f"wrote {path}")
