"""The source checkout the images are built from: its root, pyproject and revision."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

from algoperf.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
LOCKS_DIR = Path(__file__).resolve().parent / "locks"


def source_root() -> Path:
    """The checkout holding pyproject.toml; locking and building work only from one."""
    if not (ROOT / "pyproject.toml").is_file():
        raise UserError(f"no source checkout at {ROOT} (pyproject.toml is missing); install "
                        "algoperf from a clone with `pip install -e .`")
    return ROOT


def dockerfile() -> Path:
    """The Dockerfile at the checkout's root."""
    path = source_root() / "Dockerfile"
    if not path.is_file():
        raise UserError(f"{path} is missing; restore it from the repository")
    return path


def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml of the checkout."""
    return tomllib.loads((source_root() / "pyproject.toml").read_text())


def revision(root: Path | None = None) -> str:
    """The git commit of the checkout, with ``-dirty`` if tracked files changed since;
    ``unknown`` outside git."""
    root = root or source_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")
