"""Finding submissions and their trial directories in AlgoPerf's log layout.

A submission (an experiment directory) holds ``<study>/<workload>_<framework>/trial_<i>/``. A
leaderboard directory holds one submission per entry. As in AlgoPerf, experiment directories
whose names carry the runner's ``-YYYY-MM-DD-HH-MM-SS`` suffix (``--append_timestamp``) are
merged into the submission they extend.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from algoperf.errors import UserError
from algoperf.scoring import diagnostics as dg
from algoperf.workloads import registry

TIMESTAMP_SUFFIX = re.compile(r"-\d{4}(-\d{2}){5}$")
WORKLOAD_DIR = re.compile(r"^(.+)_(jax|pytorch)$")
TRIAL_DIR = re.compile(r"^trial_(\d+)")  # AlgoPerf matches the prefix only


@dataclasses.dataclass(frozen=True)
class TrialDir:
    """Where one trial's logs are, and what its directory names say it is."""

    submission: str
    experiment: Path  # one of the submission's (possibly timestamp-merged) experiment dirs
    study: str
    workload: str  # registry name, framework suffix removed
    framework: str
    trial: str  # directory name, e.g. "trial_1"
    path: Path

    @property
    def workload_dir(self) -> str:
        return f"{self.workload}_{self.framework}"

    @property
    def trial_number(self) -> int:
        return int(TRIAL_DIR.match(self.trial).group(1))


@dataclasses.dataclass(frozen=True)
class Submission:
    """A submission's name, its experiment directories and its trial directories, in order."""

    name: str
    experiments: tuple[Path, ...]
    trials: tuple[TrialDir, ...]


def strip_timestamp(name: str) -> str:
    """``exp-2024-01-31-12-00-00`` -> ``exp``: the name an appended timestamp extends."""
    return TIMESTAMP_SUFFIX.sub("", name)


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir())
    except OSError:
        return []


def _natural_key(name: str) -> tuple:
    """Sorts ``study_10`` after ``study_9``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _looks_like_submission(path: Path) -> bool:
    return any(WORKLOAD_DIR.match(w.name) for study in _subdirs(path) for w in _subdirs(study))


def _looks_like_study(path: Path) -> bool:
    return any(WORKLOAD_DIR.match(w.name) for w in _subdirs(path))


def _trial_dirs(submission: str, experiments: Sequence[Path],
                diag: dg.Diagnostics) -> list[TrialDir]:
    trials = []
    for experiment in experiments:
        for study in sorted(_subdirs(experiment), key=lambda p: _natural_key(p.name)):
            for workload_dir in _subdirs(study):
                match = WORKLOAD_DIR.match(workload_dir.name)
                if match is None:
                    continue
                workload, framework = match.groups()
                if workload not in registry.WORKLOADS:
                    diag.warn(dg.UNKNOWN_WORKLOAD, f"{submission}: unknown workload "
                              f"{workload!r}{_suggestion(workload)}; skipped", workload_dir)
                    continue
                for trial in sorted(_subdirs(workload_dir), key=lambda p: _natural_key(p.name)):
                    if TRIAL_DIR.match(trial.name):
                        trials.append(TrialDir(submission, experiment, study.name, workload,
                                               framework, trial.name, trial))
    return trials


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, list(registry.WORKLOADS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _merged_experiments(path: Path) -> tuple[Path, ...]:
    """``path`` and its timestamp-suffixed siblings, as AlgoPerf's ``get_experiment_df`` reads."""
    suffixed = re.compile(re.escape(path.name) + TIMESTAMP_SUFFIX.pattern)
    siblings = [p for p in _subdirs(path.parent) if suffixed.match(p.name)]
    return (path, *siblings)


def _submissions_in(path: Path, diag: dg.Diagnostics) -> list[tuple[str, tuple[Path, ...]]]:
    """The submissions a PATH names: itself, or each entry of a leaderboard directory."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass a submission's experiment directory "
                        "or a directory of submissions.")
    if _looks_like_submission(path):
        return [(strip_timestamp(path.name), _merged_experiments(path))]
    groups: dict[str, list[Path]] = {}
    for entry in _subdirs(path):
        if _looks_like_submission(entry):
            groups.setdefault(strip_timestamp(entry.name), []).append(entry)
        else:
            diag.warn(dg.NO_LOGS, f"no study/<workload>_<framework>/trial_<i> logs in "
                      f"{entry.name}; skipped", entry)
    if not groups:
        if _looks_like_study(path):
            raise UserError(f"{path} looks like a single study directory; pass its parent, "
                            "the submission's experiment directory.")
        raise UserError(f"no AlgoPerf logs under {path}: expected <submission>/study_<k>/"
                        "<workload>_<framework>/trial_<i>/eval_measurements.csv.")
    # Unsuffixed directory first, then its timestamped continuations in time order.
    return [(name, tuple(sorted(dirs, key=lambda p: (p.name != name, p.name))))
            for name, dirs in groups.items()]


def _unique_names(found: list[tuple[str, tuple[Path, ...]]],
                  diag: dg.Diagnostics) -> list[tuple[str, tuple[Path, ...]]]:
    """Gives same-named submissions from different PATHs distinct names (``parent/name``)."""
    counts: dict[str, int] = {}
    for name, _ in found:
        counts[name] = counts.get(name, 0) + 1
    renamed, seen = [], set()
    for name, experiments in found:
        new = name
        if counts[name] > 1:
            new = f"{experiments[0].parent.name}/{name}"
            diag.warn(dg.DUPLICATE_SUBMISSION, f"two submissions are named {name!r}; "
                      f"this one is reported as {new!r}", experiments[0])
        base, k = new, 2
        while new in seen:
            new, k = f"{base}#{k}", k + 1
        seen.add(new)
        renamed.append((new, experiments))
    return renamed


def find_submissions(paths: Iterable[str | os.PathLike],
                     diag: dg.Diagnostics) -> list[Submission]:
    """The submissions under ``paths``, each with its trial directories in a stable order.

    A PATH is either one submission's experiment directory or a directory of submissions;
    anything else is a UserError.
    """
    found: list[tuple[str, tuple[Path, ...]]] = []
    for raw in paths:
        found.extend(_submissions_in(Path(raw), diag))
    if not found:
        raise UserError("no PATH given: pass a submission's experiment directory or a "
                        "directory of submissions.")
    return [Submission(name, experiments, tuple(_trial_dirs(name, experiments, diag)))
            for name, experiments in _unique_names(found, diag)]
