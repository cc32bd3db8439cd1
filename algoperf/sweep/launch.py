"""How a job is launched: the command line of its `algoperf run` or `algoperf docker run`.

The arguments are written from the job's RunConfig through the option list `algoperf run`
itself declares (``run_command.RUN_OPTIONS``), so an option added there reaches sweep jobs
without a change here, and parsing the arguments back gives the same RunConfig.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
import sys
from pathlib import Path

import click

from algoperf.errors import UserError
from algoperf.runner import RunConfig

RUNTIMES = ("docker", "host")
DEFAULT_RUNTIME = "docker"


def _run_params() -> list[click.Option]:
    from algoperf.run_command import run_options

    # click stores decorator-declared options last-first; reversed gives the declared order.
    return list(reversed(run_options(lambda: None).__click_params__))


def run_arguments(config: RunConfig) -> list[str]:
    """The arguments of `algoperf run` (and `algoperf docker run`) that give ``config``.

    Options at their default are left out: the plan pins the algoperf version, so defaults
    cannot drift, and `algoperf docker run` takes an explicit --data-dir as a promise that
    the directory exists (digits needs none).
    """
    values = dataclasses.asdict(config)
    args: list[str] = []
    for param in _run_params():
        if param.name not in values:
            continue
        value = values[param.name]
        if value is not None and str(value) == str(param.default):
            continue
        if param.is_flag:
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
        elif value is not None:
            args += [param.opts[0], str(value)]
    return args


def docker_available() -> bool:
    """True when this installation has `algoperf docker run` (the algoperf.containers package
    and its command)."""
    from algoperf.cli import _LazyGroup

    return ("docker" in _LazyGroup.COMMANDS
            and importlib.util.find_spec("algoperf.containers") is not None)


def check_runtime(runtime: str) -> None:
    """A UserError saying how to get the container runtime when it is asked for but missing."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use {' or '.join(RUNTIMES)}")
    if runtime == "docker" and not docker_available():
        raise UserError("jobs run in the sandboxed container by default, but this algoperf has "
                        "no `algoperf docker run` (package algoperf.containers); install an "
                        "algoperf that has it (docs/containers.md), or pass --runtime host to "
                        "run each job with `algoperf run` on the host")


def default_algoperf() -> list[str]:
    """How jobs call algoperf by default: this interpreter, so they use this installation, in
    safe-path mode (``-P``: see `algoperf.submission.JOB_ENVIRONMENT`)."""
    return [sys.executable, "-P", "-m", "algoperf"]


def job_command(config: RunConfig, runtime: str, algoperf: list[str] | None = None,
                extra: str = "") -> list[str]:
    """The full command line of one job; ``extra`` is appended (shell-style words)."""
    verb = ["docker", "run"] if runtime == "docker" else ["run"]
    try:
        extra_args = shlex.split(extra)
    except ValueError as e:
        raise UserError(f"--job-args {extra!r} cannot be split into words ({e}); fix its "
                        "quoting") from None
    return [*(algoperf or default_algoperf()), *verb, *run_arguments(config), *extra_args]


def parse_algoperf(text: str | None) -> list[str] | None:
    """``--algoperf "CMD"`` as words; None keeps the default."""
    if not text:
        return None
    words = shlex.split(text)
    if not words:
        raise UserError("--algoperf is empty; give the command that runs algoperf on the "
                        "job's machine, e.g. '/opt/venv/bin/python -m algoperf'")
    return words


def log_path(jobs_dir: Path, label: str) -> Path:
    return jobs_dir / "logs" / f"{label}.log"
