"""`algoperf check SUBMISSION`: AlgoPerf's rules, checked in the submission's source
(`algoperf.submission_check`); `algoperf docker run` and `algoperf sweep plan` run the same
check before any job starts (``--no-check`` skips it there)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from algoperf import submission_check
from algoperf.workloads import registry

NO_CHECK = click.option(
    "--check/--no-check", "check", default=True, show_default=True,
    help="Check the submission against AlgoPerf's rules (algoperf check) before any job "
         "starts.")


@click.command("check")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--framework", type=click.Choice(registry.FRAMEWORKS), default=None,
              help="Check only this framework's file; default: every submission_<framework>.py "
                   "in the folder.")
@click.option("--tuning-ruleset", "--ruleset", "ruleset", type=click.Choice(["external", "self"]),
              default="external", show_default=True,
              help="The ruleset the submission is for (its search space).")
@click.option("--rules", type=click.Choice(sorted(registry.RULES)),
              default=registry.DEFAULT_RULES, show_default=True, help="Rules version.")
@click.option("--tuning-search-space", "--search-space", "search_space", default=None,
              type=click.Path(path_type=Path),
              help="The search space it runs with, when not tuning_search_space.json beside it.")
def check(submission: Path, framework: str | None, ruleset: str, rules: str,
          search_space: Path | None) -> None:
    """Check a submission against AlgoPerf's rules: its functions and signatures, its imports,
    no workload identification, no touching the runner's clock, the fixed workload, the
    environment or files outside the run. One line per finding (file:line: rule: what);
    exit 1 on a violation, 0 when there is none (warnings only)."""
    findings = submission_check.check_submission(submission, framework, ruleset=ruleset,
                                                 rules=rules, search_space=search_space)
    for finding in findings:
        click.echo(str(finding))
    bad = submission_check.violations(findings)
    warnings = len(findings) - len(bad)
    tail = f", {warnings} warning(s)" if warnings else ""
    if bad:
        click.echo(f"{submission}: {len(bad)} violation(s) of AlgoPerf's rules{tail}", err=True)
        sys.exit(1)
    click.echo(f"{submission}: no violations of AlgoPerf's rules found{tail}", err=True)
