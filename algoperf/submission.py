"""Loading a submission file and checking it against the AlgoPerf API before anything runs.

A submission written for AlgoPerf loads unmodified: its folder goes on ``sys.path`` (so its
helper modules import as they do there), and so does its repository root (`submission_root`),
so that ``from submissions.<ruleset>.<name>.helper import ...`` resolves as it does when
AlgoPerf's runner runs from the repository root. Its functions are checked against the
reference signatures in :mod:`algoperf.spec`. Every problem becomes one :class:`UserError` line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from algoperf import spec
from algoperf.errors import UserError
from algoperf.hashing import file_sha256, listing_sha256

REQUIRED = ("get_batch_size", "init_optimizer_state", "update_params", "data_selection")
OPTIONAL = ("prepare_for_eval", "get_eval_batch_size")
# How the runner calls each function (AlgoPerf's convention): by keyword or by position.
KEYWORD_CALLED = ("update_params", "prepare_for_eval")

# The environment of every Python process that runs a job (sweep jobs, containers): Python's
# safe-path mode (`python -P`), so the current folder is not put first on sys.path, where a
# checkout's `datasets/` would shadow Hugging Face's `datasets` (and any folder named like a
# package would shadow it). Submissions still find their own modules: `_import` puts their
# folder and repository root on sys.path explicitly.
JOB_ENVIRONMENT = {"PYTHONSAFEPATH": "1"}


@dataclasses.dataclass(frozen=True)
class Submission:
    """A loaded, checked submission: its module, functions and source digest."""

    path: Path
    module: ModuleType
    get_batch_size: Callable
    init_optimizer_state: Callable
    update_params: Callable
    data_selection: Callable
    prepare_for_eval: Callable | None
    get_eval_batch_size: Callable | None
    wants_train_state: bool
    source_sha256: str

    @property
    def name(self) -> str:
        """The submission's name: its folder's name (AlgoPerf's leaderboard convention)."""
        return self.path.parent.name


def resolve_path(path: str | Path, framework: str) -> Path:
    """The submission file for ``path``; a folder resolves to submission_<framework>.py or
    submission.py inside it."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in (f"submission_{framework}.py", "submission.py"):
            if (p / name).is_file():
                return p / name
        raise UserError(
            f"submission folder {p} has neither submission_{framework}.py nor submission.py; "
            "pass the submission's .py file"
        )
    if not p.exists():
        raise UserError(
            f"submission {p} does not exist; pass the path of a submission .py file, "
            "e.g. submissions/nadamw/submission_pytorch.py"
        )
    if p.suffix != ".py":
        raise UserError(f"submission {p} is not a .py file; pass a Python submission module")
    return p


HASHED_SUFFIXES = (".py", ".json", ".txt")
# A package folder holding more files than this is not a submission's own folder (a
# submission.py dropped into /tmp or a home directory); hashing it would take seconds and
# change with every unrelated file.
MAX_PACKAGE_FILES = 10_000


def is_package(folder: Path) -> bool:
    """True when ``folder`` is a submission's own folder, whose files all belong to it: it holds
    an ``__init__.py``, or an entry file ``submission.py`` / ``submission_<framework>.py`` (the
    files ``--submission FOLDER`` resolves to)."""
    from algoperf.workloads import registry

    entries = ("__init__.py", "submission.py",
               *(f"submission_{fw}.py" for fw in registry.FRAMEWORKS))
    return any((folder / name).is_file() for name in entries)


def source_files(path: Path) -> list[Path]:
    """The files the submission hash covers, in hash order: the submission file alone, or,
    when its folder is a package (`is_package`), every .py, .json and .txt file under that
    folder (``__pycache__`` and hidden folders left out, symlinked folders not followed)."""
    path = Path(path)
    folder = path.parent
    if not is_package(folder):
        return [path]
    found, seen = [], 0
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        seen += len(files)
        if seen > MAX_PACKAGE_FILES:
            raise UserError(
                f"submission folder {folder} holds more than {MAX_PACKAGE_FILES} files, so it "
                f"is not the submission's own folder; move {path.name} into a folder of its "
                "own (docs/verify.md: what the submission hash covers)")
        found += [Path(top, f) for f in files if Path(f).suffix in HASHED_SUFFIXES]
    return sorted(f for f in found if f.is_file())


def source_digest(path: Path) -> str:
    """The submission hash: `algoperf.hashing.listing_sha256` over `source_files`, each by its
    path relative to the submission's folder. The one function that computes it (the runner,
    sweeps, docker run's seal and verification all call it)."""
    folder = Path(path).parent
    return listing_sha256((f.relative_to(folder).as_posix(), f.stat().st_size, file_sha256(f))
                          for f in source_files(path))


def submission_root(path: str | Path, root: str | Path | None = None) -> Path | None:
    """The repository root the submission imports its own modules from: ``root``
    (``--submission-root``) when given, which must hold the submission; else the current
    directory when it holds the submission (AlgoPerf's runner runs from the repository root,
    which is on its ``sys.path``); else None."""
    submission = Path(path).expanduser().resolve()
    if root is None:
        cwd = Path.cwd().resolve()
        return cwd if submission.is_relative_to(cwd) else None
    given = Path(root).expanduser().resolve()
    if not given.is_dir():
        raise UserError(f"--submission-root {given} is not a folder; pass the repository root "
                        "the submission's imports start from")
    if not submission.is_relative_to(given):
        raise UserError(f"--submission-root {given} does not hold the submission {submission}; "
                        "pass the repository root that holds it")
    return given


def _import(path: Path, root: Path | None = None) -> ModuleType:
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # Last, so a folder in the repository never shadows an installed package.
    if root is not None and str(root) not in sys.path:
        sys.path.append(str(root))
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"algoperf_submission_{digest}"
    spec_ = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[module_name] = module
    try:
        spec_.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(module_name, None)
        raise UserError(
            f"submission {path} has a syntax error at line {e.lineno}: {e.msg}; fix it and rerun"
        ) from e
    except Exception as e:
        sys.modules.pop(module_name, None)
        where = _submission_frame(e, path)
        raise UserError(
            f"importing submission {path} failed{where}: {type(e).__name__}: {e}"
            f"{_root_hint(e, path, root)}"
        ) from e
    return module


def _root_hint(error: Exception, path: Path, root: Path | None) -> str:
    """For a module the submission imports by repository path: where to run from."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return ""
    top = error.name.split(".")[0]
    for folder in path.resolve().parents[1:]:
        if folder != root and (folder / top).is_dir():
            return (f"; it imports {error.name} by repository path: run from {folder} or "
                    f"pass --submission-root {folder}")
    return ""


def _submission_frame(error: BaseException, path: Path) -> str:
    """' at <file>:<line>' for the innermost frame inside the submission's folder, if any."""
    folder = path.parent.resolve()
    where = ""
    for frame in traceback.extract_tb(error.__traceback__):
        try:
            inside = Path(frame.filename).resolve().is_relative_to(folder)
        except (OSError, ValueError):
            inside = False
        if inside:
            where = f" at {Path(frame.filename).name}:{frame.lineno}"
    return where


def _check_signature(path: Path, name: str, fn: Callable) -> None:
    """Raises UserError when ``fn`` cannot be called the way AlgoPerf's runner calls it."""
    if not callable(fn):
        raise UserError(f"submission {path}: {name} is not a function")
    reference = inspect.signature(getattr(spec, name))
    try:
        actual = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions: nothing to check
    params = actual.parameters.values()
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    ref_names = [n for n in reference.parameters if n != "train_state"]
    expected = f"{name}({', '.join(ref_names)})"
    if name in KEYWORD_CALLED:
        missing = [n for n in ref_names if n not in actual.parameters]
        if missing and not has_var_kw:
            raise UserError(
                f"submission {path}: {name} lacks parameter(s) {', '.join(missing)}; the runner "
                f"calls it by keyword as {expected}"
            )
        extra = [p.name for p in params if p.default is p.empty
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.name not in reference.parameters]
        if extra:
            raise UserError(
                f"submission {path}: {name} has required parameter(s) {', '.join(extra)} that "
                f"the runner never passes; its signature must be {expected}"
            )
        return
    try:
        actual.bind(*ref_names)
    except TypeError:
        if not has_var_pos:
            raise UserError(
                f"submission {path}: {name} takes {len(actual.parameters)} parameter(s) but the "
                f"runner calls it positionally as {expected}"
            ) from None


def load_submission(path: str | Path, framework: str, root: Path | None = None) -> Submission:
    """Imports and checks the submission at ``path`` (a .py file or its folder), with the
    repository ``root`` (see `submission_root`) on ``sys.path``."""
    file = resolve_path(path, framework)
    module = _import(file, root)
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise UserError(
            f"submission {file} does not define {', '.join(missing)}; a submission defines "
            f"{', '.join(REQUIRED)} (and optionally prepare_for_eval)"
        )
    for name in (*REQUIRED, "prepare_for_eval"):
        if hasattr(module, name):
            _check_signature(file, name, getattr(module, name))
    update = module.update_params
    try:
        wants_train_state = "train_state" in inspect.signature(update).parameters
    except (TypeError, ValueError):
        wants_train_state = False
    return Submission(
        path=file,
        module=module,
        get_batch_size=module.get_batch_size,
        init_optimizer_state=module.init_optimizer_state,
        update_params=update,
        data_selection=module.data_selection,
        prepare_for_eval=getattr(module, "prepare_for_eval", None),
        get_eval_batch_size=getattr(module, "get_eval_batch_size", None),
        wants_train_state=wants_train_state,
        source_sha256=source_digest(file),
    )


def batch_size(submission: Submission, workload_name: str, base_name: str) -> int:
    """The submission's global batch size, with AlgoPerf's fallback to the base workload name
    when ``get_batch_size`` raises ValueError for a variant."""
    try:
        value = submission.get_batch_size(workload_name)
    except ValueError:
        if base_name == workload_name:
            raise UserError(
                f"submission {submission.path}: get_batch_size has no batch size for workload "
                f"{workload_name!r}; add one"
            ) from None
        value = submission.get_batch_size(base_name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(
            f"submission {submission.path}: get_batch_size({workload_name!r}) returned "
            f"{value!r}; it must return a positive int"
        )
    return value
