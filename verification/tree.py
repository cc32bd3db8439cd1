"""Finding the trials under a PATH, at any level of the AlgoPerf layout.

``<leaderboard>/<submission>/study_<k>/<workload>_<framework>/trial_<i>/``: PATH may be a trial,
a workload or study directory, a submission (experiment directory), a leaderboard (a
directory of submissions) or any directory above (say, one holding an external- and a
self-tuning leaderboard). A trial directory is one named ``trial_<i>`` inside a
``<workload>_<framework>`` directory that holds an event log or AlgoPerf's files.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from algoperf.errors import UserError
from algoperf.logs.events import EVENTS_FILENAME
from algoperf.scoring.discover import TRIAL_DIR, WORKLOAD_DIR

MARKERS = (EVENTS_FILENAME, "eval_measurements.csv", "flags_0.json")
TRIAL, STUDY_OR_BELOW, SUBMISSION, LEADERBOARD, TREE = (
    "trial", "study", "submission", "leaderboard", "tree")


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
    """The trials under ``path``, sorted; raises UserError when there are none."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a trial, study, submission or "
                        "leaderboard directory")
    root = root.resolve()
    if is_trial_dir(root):
        return Tree(root, TRIAL, (root,))
    trials = []
    for directory, dirs, _ in os.walk(root):
        dirs.sort(key=_natural_key)
        here = Path(directory)
        if is_trial_dir(here):
            trials.append(here)
            dirs.clear()
    if not trials:
        raise UserError(f"no trials under {root}: expected <submission>/study_<k>/"
                        "<workload>_<framework>/trial_<i>/ with events.jsonl or "
                        "eval_measurements.csv")
    return Tree(root, _level(root, trials), tuple(trials))


def _level(root: Path, trials: list[Path]) -> str:
    depth = min(len(t.relative_to(root).parts) for t in trials)
    return {1: STUDY_OR_BELOW, 2: STUDY_OR_BELOW, 3: SUBMISSION, 4: LEADERBOARD}.get(depth, TREE)


def _natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))
