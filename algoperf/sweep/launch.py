"""How a job is launched: the command line of its `algoperf run` or `algoperf docker run`.

The arguments are written from the job's RunConfig by ``algoperf.run_options.to_arguments``,
the one owner of the run's options, so an option added there reaches sweep jobs without a
change here, and parsing the arguments back gives the same RunConfig.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

from algoperf.errors import UserError
from algoperf.run_options import to_arguments
from algoperf.runner import RunConfig

RUNTIMES = ("docker", "host")
DEFAULT_RUNTIME = "docker"


def docker_available() -> bool:
    """True when this installation has `algoperf docker run` (the algoperf.containers package
    and its command)."""
    try:
        return importlib.util.find_spec("algoperf.containers.command") is not None
    except ModuleNotFoundError:
        return False


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
    # `sweep plan` checked the submission, which `check_inputs_unchanged` keeps as planned.
    verb = ["docker", "run", "--no-check"] if runtime == "docker" else ["run"]
    try:
        extra_args = shlex.split(extra)
    except ValueError as e:
        raise UserError(f"--job-args {extra!r} cannot be split into words ({e}); fix its "
                        "quoting") from None
    return [*(algoperf or default_algoperf()), *verb, *to_arguments(config), *extra_args]


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
