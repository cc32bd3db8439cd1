"""`algoperf demo`: a whole benchmark in a few minutes on a 2-core CPU.

Reference training algorithms train on the `digits` dev workload under the external tuning
ruleset (studies x trials, as a real competition does), every trial until the validation target
or the budget; the runs are written in AlgoPerf's layout with their event logs, then scored
with performance profiles into a leaderboard and a profile plot.
"""

from __future__ import annotations

from pathlib import Path

import click

from algoperf import terminal
from algoperf.errors import UserError
from algoperf.workloads import registry

SUBMISSIONS = Path(__file__).resolve().parent.parent / "submissions"


@click.command()
@click.option("--algorithms", default="nadamw,adamw", show_default=True,
              help="Comma-separated reference submissions (folders of --submissions-dir).")
@click.option("--framework", default="pytorch", show_default=True,
              type=click.Choice(registry.FRAMEWORKS))
@click.option("--workload", default="digits", show_default=True)
@click.option("--num-studies", default=2, show_default=True, type=int)
@click.option("--num-tuning-trials", default=3, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--data-dir", default="~/data", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="demo-output", show_default=True,
              type=click.Path(path_type=Path),
              help="Output folder; the demo's own earlier runs in it are replaced.")
@click.option("--submissions-dir", default=SUBMISSIONS, show_default=True,
              type=click.Path(path_type=Path))
@click.pass_context
def demo(ctx: click.Context, algorithms: str, framework: str, workload: str, num_studies: int,
         num_tuning_trials: int, seed: int, data_dir: Path, out: Path,
         submissions_dir: Path) -> None:
    """Run reference algorithms on a dev workload, then score them with performance profiles."""
    from algoperf.progress import LiveProgress
    from algoperf.run_command import summary_table
    from algoperf.runner import RunConfig, run
    from algoperf.scoring import render_table, score, write_outputs

    console = terminal.console()
    names = [a.strip() for a in algorithms.split(",") if a.strip()]
    if not names:
        raise UserError("--algorithms is empty; name at least one reference submission")
    for name in names:
        if not (submissions_dir / name).is_dir():
            known = sorted(p.name for p in submissions_dir.iterdir() if p.is_dir())
            raise UserError(f"no submission {name!r} in {submissions_dir}; "
                            f"choose from {', '.join(known)}")
    out = out.expanduser().resolve()
    info = registry.get_workload(workload)
    console.print(f"[bold]algoperf demo[/]: {', '.join(names)} on {workload} ({framework}), "
                  f"{num_studies} studies x {num_tuning_trials} trials, external tuning; "
                  f"target validation/{info.target_metric_name} "
                  f"{'>=' if info.direction == registry.MAXIMIZE else '<='} "
                  f"{info.validation_target_value:g}")
    for name in names:
        config = RunConfig(
            submission_path=submissions_dir / name / f"submission_{framework}.py",
            workload=workload, framework=framework, experiment_dir=out, experiment_name=name,
            data_dir=data_dir.expanduser(), ruleset="external",
            tuning_search_space=submissions_dir / name / "tuning_search_space.json",
            num_studies=num_studies, num_tuning_trials=num_tuning_trials, seed=seed,
            overwrite=True, save_checkpoints=False, debug=ctx.obj.get("debug", False))
        with LiveProgress(f"{name}: training") as progress:
            results = run(config, progress)
        console.print(summary_table(results, info))
    report = score([out / name for name in names], rules="v0.6", ruleset="external")
    render_table(report, console)
    paths = write_outputs(report, out / "scoring")
    console.print(f"logs: {out}")
    console.print(f"performance profile: {paths['plot_png']}")
