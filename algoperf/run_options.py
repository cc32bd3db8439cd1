"""The options of a run: one declaration for `algoperf run`, `algoperf docker run` and sweeps.

`run_options` puts them on a click command; `config_from_options` turns the parsed values into
the runner's :class:`~algoperf.runner.RunConfig`; `to_arguments` turns values (or a RunConfig)
back into the command line that gives them. Sweep jobs and the container are launched through
`to_arguments`, so an option added here reaches them with no other change, and parsing the
arguments back gives the same configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from algoperf.workloads import registry

RUN_OPTIONS = [
    click.option("--submission", "submission_path", required=True,
                 type=click.Path(path_type=Path),
                 help="Submission .py file (or its folder, holding submission_<framework>.py)."),
    click.option("--submission-root", default=None,
                 type=click.Path(path_type=Path),
                 help="Repository root put on sys.path, so the submission imports its modules "
                      "by repository path (submissions.<ruleset>.<name>.helper); default: the "
                      "current directory when it holds the submission."),
    click.option("--workload", required=True, help="Workload name, e.g. digits or mnist."),
    click.option("--framework", required=True, type=click.Choice(registry.FRAMEWORKS),
                 help="Framework of the submission and the workload."),
    click.option("--experiment-dir", required=True, type=click.Path(path_type=Path),
                 help="Root folder of the outputs."),
    click.option("--experiment-name", default=None,
                 help="Subfolder of the outputs; default: the submission folder's name."),
    click.option("--data-dir", default="~/data", show_default=True,
                 type=click.Path(path_type=Path),
                 help="Prepared datasets (algoperf datasets prepare)."),
    click.option("--imagenet-v2-data-dir", default=None, type=click.Path(path_type=Path),
                 help="ImageNet-v2 test set, when not under --data-dir (AlgoPerf's flag)."),
    click.option("--tuning-ruleset", "--ruleset", "ruleset", default="external",
                 show_default=True, type=click.Choice(["external", "self"]),
                 help="External tuning (a search space, several trials) or self-tuning."),
    click.option("--tuning-search-space", "--search-space", "tuning_search_space",
                 default=None, type=click.Path(path_type=Path),
                 help="JSON search space (external ruleset)."),
    click.option("--rules", default=registry.DEFAULT_RULES, show_default=True,
                 type=click.Choice(sorted(registry.RULES)),
                 help="Rules version: budgets, studies, trials, self-tuning factor."),
    click.option("--num-studies", "--studies", "num_studies", default=1, show_default=True,
                 type=int, help="Studies to run (each repeats the trials with other seeds)."),
    click.option("--study", default=None, type=int, help="Run only this study index."),
    click.option("--num-tuning-trials", "--trials", "num_tuning_trials", default=None,
                 type=int,
                 help="Trials per study; default: the rules version's."),
    click.option("--hparam-start-index", default=None, type=int,
                 help="First trial to run, counted from 0 (AlgoPerf's flag)."),
    click.option("--hparam-end-index", default=None, type=int,
                 help="Run trials before this index only (AlgoPerf's flag)."),
    click.option("--seed", default=None, type=int,
                 help="Master seed; per-trial seeds derive from it. Random if unset."),
    click.option("--max-global-steps", default=None, type=int,
                 help="Stop every trial after this many steps (a trial run, not a result)."),
    click.option("--resume", is_flag=True, help="Continue an interrupted run."),
    click.option("--overwrite", is_flag=True, help="Delete an existing run first."),
    click.option("--save-checkpoints/--no-save-checkpoints", default=True, show_default=True,
                 help="Checkpoint at each eval, so --resume continues where the run stopped."),
    click.option("--save-intermediate-checkpoints", is_flag=True,
                 help="Keep every checkpoint, not only the latest."),
    click.option("--reference", default=None, metavar="PROFILE",
                 help="Refuse to start unless this machine matches the reference hardware "
                      "profile (see algoperf fingerprint --profiles)."),
    click.option("--allow-nonreference", is_flag=True,
                 help="With --reference: run on other hardware anyway, marked non-certifiable."),
]


def run_options(fn):
    """Puts the options of `algoperf run` on a click command."""
    for option in reversed(RUN_OPTIONS):
        fn = option(fn)
    return fn


def _params() -> list[click.Option]:
    # click stores decorator-declared options last-first; reversed gives the declared order.
    return list(reversed(run_options(lambda: None).__click_params__))


def config_from_options(debug: bool = False, **options):
    """The RunConfig of `algoperf run`'s options; the experiment name defaults to the
    submission's folder name (the folder itself when a folder is given)."""
    from algoperf.runner import RunConfig

    submission = Path(options["submission_path"]).resolve()
    default_name = submission.name if submission.is_dir() else submission.parent.name
    name = options.pop("experiment_name") or default_name
    return RunConfig(experiment_name=name, debug=debug,
                     data_dir=Path(options.pop("data_dir")).expanduser(), **options)


def to_arguments(values: Mapping[str, Any] | Any) -> list[str]:
    """`algoperf run`'s arguments that give ``values`` (option values by parameter name, or a
    RunConfig).

    An option at its default is left out (the job's algoperf is the same version, so defaults
    cannot drift), and so is one not given (None). `algoperf docker run` takes an explicit
    --data-dir as a promise that the folder exists, so the default one is never passed.
    """
    if dataclasses.is_dataclass(values):
        values = dataclasses.asdict(values)
    args: list[str] = []
    for param in _params():
        if param.name not in values:
            continue
        value = values[param.name]
        if value is None or str(value) == str(param.default):
            continue
        if param.is_flag:
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args
