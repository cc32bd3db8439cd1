"""Finding submissions and their trial directories in AlgoPerf's log layout.

``<leaderboard>/<submission>/study_<k>/<workload>_<framework>/trial_<i>/``: a submission (an
experiment directory) holds ``<study>/<workload>_<framework>/trial_<i>/``, a leaderboard
directory holds one submission per entry, and a folder above may hold several leaderboards
(say, ``external_tuning/`` and ``self_tuning/``). A trial directory is one named ``trial_<i>``
inside a ``<workload>_<framework>`` directory that holds an event log or AlgoPerf's files.

This module is the one owner of that layout: :func:`find_trials` says what a PATH is (a
trial, a study or workload directory, a submission, a leaderboard or a tree of them) for both
``algoperf score`` and ``algoperf verify``; :func:`find_submissions` and
:func:`find_leaderboards` build scoring's view on it. As in AlgoPerf, experiment directories
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
from algoperf.scoring.csvlog import FILENAME as CSV_FILENAME
from algoperf.scoring.events import FILENAME as EVENTS_FILENAME
from algoperf.workloads import registry

TIMESTAMP_SUFFIX = re.compile(r"-\d{4}(-\d{2}){5}$")
WORKLOAD_DIR = re.compile(r"^(.+)_(jax|pytorch)$")
TRIAL_DIR = re.compile(r"^trial_(\d+)")  # AlgoPerf matches the prefix only
VERIFICATION_SUFFIX = ".verification"  # `verification_dir`: verify's output, never logs
MARKERS = (EVENTS_FILENAME, CSV_FILENAME, "flags_0.json")
TRIAL, STUDY_OR_BELOW, SUBMISSION, LEADERBOARD, TREE = (
    "trial", "study", "submission", "leaderboard", "tree")


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
class SubmissionLogs:
    """A submission's name, its experiment directories and its trial directories, in order."""

    name: str
    experiments: tuple[Path, ...]
    trials: tuple[TrialDir, ...]


def strip_timestamp(name: str) -> str:
    """``exp-2024-01-31-12-00-00`` -> ``exp``: the name an appended timestamp extends."""
    return TIMESTAMP_SUFFIX.sub("", name)


def verification_dir(path: Path) -> Path:
    """Where `algoperf verify PATH` writes by default: ``<PATH>.verification`` beside the logs,
    a folder the discovery here passes over, so the logs' tree reads as before."""
    path = Path(path).expanduser().resolve()
    return path.parent / (path.name + VERIFICATION_SUFFIX)


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return sorted(Path(e.path) for e in entries
                          if e.is_dir() and not e.name.endswith(VERIFICATION_SUFFIX))
    except OSError:
        return []


def _natural_key(name: str) -> tuple:
    """Sorts ``study_10`` after ``study_9``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


# --- the layout: what a PATH is -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tree:
    """The trials under ``root`` and how they group: ``level`` says what ``root`` is."""

    root: Path
    level: str
    trials: tuple[Path, ...]

    def submissions(self) -> dict[Path, list[Path]]:
        """submission (experiment) directory -> its trials, for levels that have them."""
        if self.level in (TRIAL, STUDY_OR_BELOW):
            return {}
        groups: dict[Path, list[Path]] = {}
        for trial in self.trials:
            groups.setdefault(trial.parents[2], []).append(trial)
        return groups

    def leaderboards(self) -> dict[Path, list[Path]]:
        """leaderboard directory (or the submission itself) -> its submission directories."""
        if self.level == SUBMISSION:
            return {self.root: [self.root]}
        groups: dict[Path, list[Path]] = {}
        for submission in self.submissions():
            groups.setdefault(submission.parent, []).append(submission)
        return groups


def is_trial_dir(path: Path) -> bool:
    return (TRIAL_DIR.match(path.name) is not None
            and WORKLOAD_DIR.match(path.parent.name) is not None
            and any((path / marker).is_file() for marker in MARKERS))


def find_trials(path: str | os.PathLike) -> Tree:
    """The trials under ``path`` (resolved), sorted; raises UserError when there are none."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a trial, study, submission or "
                        "leaderboard directory")
    root = root.resolve()
    if is_trial_dir(root):
        return Tree(root, TRIAL, (root,))
    trials = []
    markers = frozenset(MARKERS)
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        if (TRIAL_DIR.match(here.name) and WORKLOAD_DIR.match(here.parent.name)
                and not markers.isdisjoint(files)):  # is_trial_dir, from the listing
            trials.append(here)
            dirs.clear()
        dirs.sort(key=_natural_key)
    if not trials:
        raise UserError(f"no trials under {root}: expected <submission>/study_<k>/"
                        "<workload>_<framework>/trial_<i>/ with events.jsonl or "
                        "eval_measurements.csv")
    return Tree(root, _level(root, trials), tuple(trials))


def _level(root: Path, trials: list[Path]) -> str:
    depth = min(len(t.relative_to(root).parts) for t in trials)
    return {1: STUDY_OR_BELOW, 2: STUDY_OR_BELOW, 3: SUBMISSION, 4: LEADERBOARD}.get(depth, TREE)


def _scorable_tree(path: Path) -> Tree:
    """The layout under a PATH given to scoring: a submission, a leaderboard or a tree of
    leaderboards; a trial, study or workload directory is a UserError naming what to pass."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass a submission's experiment directory "
                        "or a directory of submissions.")
    try:
        tree = find_trials(path)
    except UserError:
        raise UserError(f"no AlgoPerf logs under {path}: expected <submission>/study_<k>/"
                        "<workload>_<framework>/trial_<i>/eval_measurements.csv.") from None
    if tree.level == TRIAL:
        raise UserError(f"{path} is a single trial directory; pass the submission's experiment "
                        f"directory {tree.root.parents[2]}.")
    if tree.level == STUDY_OR_BELOW:
        depth = min(len(t.relative_to(tree.root).parts) for t in tree.trials)
        if depth == 2:
            raise UserError(f"{path} looks like a single study directory; pass its parent, "
                            f"the submission's experiment directory {tree.root.parent}.")
        raise UserError(f"{path} looks like a workload directory of one study; pass the "
                        f"submission's experiment directory {tree.root.parents[1]}.")
    return tree


def _as_given(path: Path, tree: Tree, found: Path) -> Path:
    """``found`` (under the resolved root) spelt from ``path`` as the user gave it."""
    rel = found.relative_to(tree.root)
    return path if rel == Path() else path / rel


def find_leaderboards(paths: Iterable[str | os.PathLike],
                      ) -> list[tuple[str | None, tuple[Path, ...]]]:
    """The leaderboards to score, each as (label, PATHs to score together).

    PATHs that are submissions or leaderboards form one leaderboard (label None). A single
    PATH holding several leaderboards (say, ``external_tuning/`` and ``self_tuning/``) gives
    one entry per leaderboard, labelled with its path relative to PATH; beside other PATHs
    that is a UserError, since it is unclear which to score together.
    """
    paths = [Path(p) for p in paths]
    several = {}
    for path in paths:
        tree = _scorable_tree(path)
        boards = tree.leaderboards()
        if len(boards) > 1:
            several[path] = (tree, boards)
    if not several:
        return [(None, tuple(paths))]
    if len(paths) > 1:
        path, (tree, boards) = next(iter(several.items()))
        raise UserError(f"{path} holds {len(boards)} leaderboards "
                        f"({', '.join(_labels(tree, boards))}); pass it alone to score "
                        "each, or pass the leaderboard directories to score together.")
    ((path, (tree, boards)),) = several.items()
    return [(label, (_as_given(path, tree, board),))
            for label, board in zip(_labels(tree, boards), boards, strict=True)]


def _labels(tree: Tree, boards: dict[Path, list[Path]]) -> list[str]:
    return [board.relative_to(tree.root).as_posix() for board in boards]


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
    """The submissions a PATH names: itself, or each entry of its leaderboard directory."""
    tree = _scorable_tree(path)
    if tree.level == SUBMISSION:
        return [(strip_timestamp(path.name), _merged_experiments(path))]
    boards = tree.leaderboards()
    if len(boards) > 1:
        raise UserError(f"{path} holds {len(boards)} leaderboards "
                        f"({', '.join(_labels(tree, boards))}); score them one at a "
                        "time (`algoperf score` does so when given this folder alone).")
    ((board, members),) = boards.items()
    board_path = _as_given(path, tree, board)
    members = {m.name for m in members}
    groups: dict[str, list[Path]] = {}
    for entry in _subdirs(board_path):
        if entry.name in members:
            groups.setdefault(strip_timestamp(entry.name), []).append(entry)
        else:
            diag.warn(dg.NO_LOGS, f"no study/<workload>_<framework>/trial_<i> logs in "
                      f"{entry.name}; skipped", entry)
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
                     diag: dg.Diagnostics) -> list[SubmissionLogs]:
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
    return [SubmissionLogs(name, experiments, tuple(_trial_dirs(name, experiments, diag)))
            for name, experiments in _unique_names(found, diag)]
