"""`algoperf demo`: a whole benchmark in a few minutes on a 2-core CPU.

Reference training algorithms (NAdamW, AdamW and heavy-ball momentum by default;
``--algorithms all`` for all eight paper baselines) train on every workload of the embedded
dev suite (``registry.DEV_SUITE``: tabular, mnist1d, charlm; nothing to download) under the
external tuning ruleset (studies x trials drawn from each algorithm's search space, as a
competition does), every trial until the validation target or the budget, with live
progress. The runs are written in AlgoPerf's layout with their event logs, then scored with
performance profiles into a leaderboard, a profile plot and, where ``algoperf.scoring.html``
provides ``write_report``, a web page. Layout of ``--out`` (default ``demo-output/``)::

    runs/<framework>/<algorithm>/study_<k>/<workload>_<framework>/trial_<i>/   the logs
    scoring/<framework>/                          leaderboard, scores, performance profile
    report/<framework>/index.html                 the HTML leaderboard

so ``algoperf score demo-output`` scores the runs (one leaderboard per framework) without
tripping over the demo's own outputs.

The reference submissions come with the package (``algoperf.reference_submissions``, the
repository's ``submissions/`` folder), so the code and the submissions run are always from the
same installation; a checkout whose own ``submissions/`` differ from the installed ones is
refused rather than silently ignored (``--submissions-dir`` picks any folder explicitly).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from pathlib import Path

import click

from algoperf import terminal
from algoperf.errors import UserError
from algoperf.workloads import registry

DEFAULT_ALGORITHMS = "nadamw,adamw,momentum"
ALL_ALGORITHMS = "all"  # every folder with a search space: the eight paper baselines
SUBMISSIONS_PACKAGE = "algoperf.reference_submissions"


def packaged_submissions() -> Path:
    """The folder of the reference submissions installed with this package."""
    spec = importlib.util.find_spec(SUBMISSIONS_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if not locations:
        raise UserError(f"this algoperf installation has no reference submissions "
                        f"({SUBMISSIONS_PACKAGE} is missing): reinstall it (pip install -e . "
                        "in a checkout) or pass --submissions-dir FOLDER")
    return Path(locations[0]).resolve()


def _checkout_submissions(cwd: Path) -> Path | None:
    """``cwd``'s ``submissions/`` when ``cwd`` is an algoperf checkout, else None."""
    folder = cwd / "submissions"
    if (cwd / "pyproject.toml").is_file() and (folder / "nadamw").is_dir():
        return folder.resolve()
    return None


def resolve_submissions(submissions_dir: Path | None, cwd: Path | None = None) -> Path:
    """``--submissions-dir`` if given, else the packaged reference submissions; a UserError
    when run inside a checkout whose ``submissions/`` is not the one installed (a shared venv
    installed from another checkout would otherwise run that checkout's submissions)."""
    if submissions_dir is not None:
        folder = submissions_dir.expanduser().resolve()
        if not folder.is_dir():
            raise UserError(f"--submissions-dir {submissions_dir} is not a folder")
        return folder
    installed = packaged_submissions()
    checkout = _checkout_submissions((cwd or Path.cwd()).resolve())
    if checkout is not None and checkout != installed:
        raise UserError(f"this algoperf is installed from {installed.parent}, not from the "
                        f"checkout {checkout.parent} you are in, so the demo would run the "
                        "other checkout's submissions: reinstall here (pip install -e .) or "
                        f"pass --submissions-dir {checkout}")
    return installed


def _names(text: str, what: str, known: list[str]) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError(f"--{what} is empty; choose from {', '.join(known)}")
    for name in names:
        if name not in known:
            raise UserError(f"no {what[:-1]} {name!r}; choose from {', '.join(known)}")
    return names


def algorithm_names(text: str, known: list[str]) -> list[str]:
    """``--algorithms``: comma-separated names among ``known``, or ``all`` for every one."""
    if text.strip() == ALL_ALGORITHMS:
        return list(known)
    return _names(text, "algorithms", known)


def _write_html(run_dirs: list[Path], out_dir: Path) -> Path | None:
    """The HTML leaderboard through ``algoperf.scoring.html.write_report``, where it exists."""
    try:
        html = importlib.import_module("algoperf.scoring.html")
    except ImportError:
        return None
    write_report = getattr(html, "write_report", None)
    return None if write_report is None else write_report(run_dirs, out_dir)


@click.command()
@click.option("--algorithms", default=DEFAULT_ALGORITHMS, show_default=True,
              help="Comma-separated reference submissions (folders of the submissions dir), "
                   "or 'all': every one with a search space (the eight paper baselines).")
@click.option("--framework", default="pytorch", show_default=True,
              type=click.Choice([*registry.FRAMEWORKS, "both"]))
@click.option("--workloads", "workloads_text", default=",".join(registry.DEV_SUITE),
              show_default=True, help="Comma-separated dev workloads.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Runs trained at once, each pinned to its own CPU with one thread (at most "
                   "one per usable CPU); 1 trains them one after another.")
@click.option("--num-studies", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--num-tuning-trials", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-global-steps", default=None, type=click.IntRange(min=1),
              help="Stop every trial after this many steps (a quick check, not a result).")
@click.option("--data-dir", default="~/data", show_default=True, type=click.Path(path_type=Path),
              help="Used where it holds a prepared copy of a dev dataset; none is needed.")
@click.option("--out", default="demo-output", show_default=True,
              type=click.Path(path_type=Path),
              help="Output folder; the demo's own earlier runs in it are replaced.")
@click.option("--submissions-dir", default=None, type=click.Path(path_type=Path),
              help="Folder of submission folders [default: the reference submissions "
                   "installed with algoperf].")
@click.pass_context
def demo(ctx: click.Context, algorithms: str, framework: str, workloads_text: str,
         jobs: int, num_studies: int, num_tuning_trials: int, seed: int,
         max_global_steps: int | None, data_dir: Path, out: Path,
         submissions_dir: Path | None) -> None:
    """Run reference algorithms on the dev suite, then score them with performance profiles."""
    from algoperf import run_pool
    from algoperf.progress import LiveProgress
    from algoperf.run_command import summary_table
    from algoperf.runner import RunConfig
    from algoperf.scoring import render_table, score, write_outputs

    started = time.monotonic()
    console = terminal.console()
    submissions = resolve_submissions(submissions_dir)
    known = sorted(p.name for p in submissions.iterdir()
                   if (p / "tuning_search_space.json").is_file())
    names = algorithm_names(algorithms, known)
    workloads = _names(workloads_text, "workloads",
                       [name for name, info in registry.WORKLOADS.items() if info.dev])
    frameworks = list(registry.FRAMEWORKS) if framework == "both" else [framework]
    out = out.expanduser().resolve()
    runs = []  # (label, config), every framework's runs in one pool
    for fw in frameworks:
        for workload in workloads:
            for name in names:
                runs.append((f"{name} on {workload} ({fw})", RunConfig(
                    submission_path=submissions / name / f"submission_{fw}.py",
                    workload=workload, framework=fw, experiment_dir=out / "runs" / fw,
                    experiment_name=name, data_dir=data_dir.expanduser(), ruleset="external",
                    tuning_search_space=submissions / name / "tuning_search_space.json",
                    num_studies=num_studies, num_tuning_trials=num_tuning_trials, seed=seed,
                    max_global_steps=max_global_steps, overwrite=True, save_checkpoints=False,
                    debug=ctx.obj.get("debug", False) if ctx.obj else False)))
    jobs = min(jobs, len(run_pool.usable_cpus()), len(runs))
    console.print(f"[bold]algoperf demo[/]: {', '.join(names)} on {', '.join(workloads)} "
                  f"({', '.join(frameworks)}), {num_studies} "
                  f"stud{'y' if num_studies == 1 else 'ies'} x {num_tuning_trials} trials, "
                  f"external tuning, {jobs} run{'s' if jobs > 1 else ''} at a time"
                  f"{', one CPU each' if jobs > 1 else ''}; submissions from {submissions}")
    for workload in workloads:
        info = registry.get_workload(workload)
        console.print(f"[bold]{workload}[/]: validation/{info.target_metric_name} "
                      f"{'>=' if info.direction == registry.MAXIMIZE else '<='} "
                      f"{info.validation_target_value:g} within "
                      f"{info.max_allowed_runtime_sec:g} s")
    with LiveProgress(f"{len(runs)} runs, {jobs} at a time") as progress:
        results = run_pool.run_all(runs, jobs, progress)
    for fw in frameworks:
        for (label, config) in runs:
            if config.framework == fw:
                console.print(f"[bold]{label}[/]")
                console.print(summary_table(results[label],
                                            registry.get_workload(config.workload)))
        run_dirs = [out / "runs" / fw / name for name in names]
        report = score(run_dirs, rules="v0.6", ruleset="external")
        render_table(report, console)
        paths = write_outputs(report, out / "scoring" / fw)
        console.print(f"logs: {out / 'runs' / fw}")
        console.print(f"performance profile: {paths['plot_png']}")
        page = _write_html(run_dirs, out / "report" / fw)
        if page is not None:
            console.print(f"leaderboard page: {page}")
    console.print(f"demo done in {time.monotonic() - started:.0f} s; score the runs again with: "
                  f"algoperf score {out}")
