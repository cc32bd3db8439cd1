"""Recomputing time-to-target and benchmark scores with the scoring code, and comparing claims.

Scores are recomputed from the trial files (which the trial checks have held to the events)
by `algoperf.scoring.score`, one leaderboard at a time, under the rules version and tuning
ruleset the runs recorded. Claims come from a file: the JSON report of ``algoperf score``
(or its ``--out`` directory), or AlgoPerf's ``scores.csv`` / ``time_to_targets.csv``. A claimed
number agrees when it is within 1e-9 (relative) of the recomputed one or within the rounding
of the digits it was written with (``0.6244`` claims 0.62435 to 0.62445).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.scoring import diagnostics as dg
from algoperf.scoring import score
from algoperf.scoring.csvlog import read_eval_measurements
from algoperf.scoring.discover import (
    STUDY_OR_BELOW,
    TRIAL,
    TRIAL_DIR,
    WORKLOAD_DIR,
    Tree,
    TrialDir,
)
from algoperf.scoring.events import read_run_events
from algoperf.scoring.trials import evaluate_trial, wanted_columns
from algoperf.verification.findings import FAIL, SKIP, Check, Problem, check
from algoperf.workloads import registry

REL_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Claimed:
    """One claimed number and how far from it a recomputed value may be."""

    value: float  # inf: "not reached"
    tolerance: float
    text: str


@dataclasses.dataclass
class SubmissionScore:
    name: str
    score: float
    times: dict[str, float]  # median over studies of the best trial's time (inf: missed)


@dataclasses.dataclass
class Leaderboard:
    path: str  # relative to the verified root
    rules: str
    ruleset: str
    submissions: list[SubmissionScore]
    warnings: list[str]


@dataclasses.dataclass
class Recomputed:
    """Everything recomputed: per-trial time-to-target and, above the study level, scores."""

    trial_times: dict[str, float]  # trial path (relative) -> time-to-target
    leaderboards: list[Leaderboard]

    def to_json(self) -> dict[str, Any]:
        return {"trial_time_to_target": {k: _finite(v) for k, v in self.trial_times.items()},
                "leaderboards": [{"path": b.path, "rules": b.rules, "ruleset": b.ruleset,
                                  "submissions": [{"name": s.name, "score": s.score,
                                                   "times": {w: _finite(t)
                                                             for w, t in s.times.items()}}
                                                  for s in b.submissions],
                                  "warnings": b.warnings} for b in self.leaderboards]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _majority(values: Iterable[Any], default: str) -> str:
    counts = collections.Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else default


def recompute(tree: Tree, facts: dict[str, dict[str, Any]], rules: str | None) -> Recomputed:
    """Time-to-target of every trial, and the scores of every leaderboard in ``tree``.

    ``facts``: trial path (absolute) -> what its verification recorded (rules, ruleset).
    ``rules``: the rules version to score under when the runs do not record one.
    """
    if tree.level in (TRIAL, STUDY_OR_BELOW):
        return Recomputed({_rel(tree, t): _trial_time(t) for t in tree.trials}, [])
    trial_times, boards = {}, []
    submissions = tree.submissions()
    for board, members in tree.leaderboards().items():
        trials = [t for s in members for t in submissions[s]]
        ruleset = _majority((facts[str(t)].get("ruleset") for t in trials), "external")
        version = rules or _majority((facts[str(t)].get("rules_version") for t in trials),
                                     registry.DEFAULT_RULES)
        try:
            report = score(members, rules=version, ruleset=ruleset, bootstrap_replicates=0)
        except UserError as e:
            boards.append(Leaderboard(_rel(tree, board), version, ruleset, [], [str(e)]))
            continue
        for trial in report.trials:
            trial_times[_rel(tree, trial.trial.path)] = trial.time_to_target
        boards.append(Leaderboard(
            _rel(tree, board), report.rules, ruleset,
            [SubmissionScore(s.name, s.score, {w: s.time(w) for w in s.workloads})
             for s in report.submissions],
            [f"{w.kind}: {w}" for w in report.warnings]))
    return Recomputed(trial_times, boards)


def _rel(tree: Tree, path: Path) -> str:
    rel = path.resolve().relative_to(tree.root).as_posix()
    return "." if rel in ("", ".") else rel


def _trial_time(path: Path) -> float:
    """One trial's time-to-target, read as scoring reads it."""
    workload = WORKLOAD_DIR.match(path.parent.name)
    if workload is None or TRIAL_DIR.match(path.name) is None:
        return math.nan
    try:
        info = registry.get_workload(workload.group(1))
    except UserError:
        return math.nan
    diag = dg.Diagnostics()
    where = TrialDir(path.parents[2].name, path.parents[2], path.parent.parent.name,
                     info.name, workload.group(2), path.name, path)
    log = read_eval_measurements(path, wanted_columns(info), diag)
    return evaluate_trial(where, log, read_run_events(path, diag), info, diag).time_to_target


# --- claims -------------------------------------------------------------------------------

@dataclasses.dataclass
class Claims:
    source: str
    scores: dict[str, Claimed]  # submission -> score
    times: dict[str, dict[str, Claimed]]  # submission -> workload -> time
    # the submissions of each claimed leaderboard, when the claims hold several
    boards: list[frozenset[str]] = dataclasses.field(default_factory=list)


def _claimed(text: str) -> Claimed:
    """A number as written: its value and the half-unit of its last written digit."""
    text = text.strip()
    if text in ("", "inf", "Infinity", "null", "None"):
        return Claimed(math.inf, 0.0, text or "empty")
    try:
        exact = Decimal(text)
        value = float(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    exponent = exact.as_tuple().exponent
    rounding = 0.5 * 10.0 ** exponent if isinstance(exponent, int) else 0.0
    return Claimed(value, max(rounding, REL_TOL * abs(value)), text)


def _from_json(value: Any) -> Claimed:
    if value is None:
        return Claimed(math.inf, 0.0, "null")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return Claimed(float(value), REL_TOL * abs(float(value)), repr(value))


def load_claims(path: str | os.PathLike) -> Claims:
    """Claims from a score report (JSON), AlgoPerf's scores.csv or time_to_targets.csv, or a
    directory holding them. Raises UserError when the file is none of these."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "report.json", path / "scores.csv",
                             path / "time_to_targets.csv") if p.is_file()]
        if not found:
            raise UserError(f"{path} holds no report.json, scores.csv or time_to_targets.csv")
        claims = [load_claims(p) for p in found]
        merged = Claims(str(path), {}, {})
        for c in claims:
            merged.scores.update(c.scores)
            merged.boards.extend(c.boards)
            for name, times in c.times.items():
                merged.times.setdefault(name, {}).update(times)
        return merged
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no claims file at {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read claims file {path}: {e}") from None
    try:
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            return _json_claims(str(path), text)
        return _csv_claims(str(path), text)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UserError(f"claims file {path} is not a score report (algoperf score --format "
                        f"json) or AlgoPerf's scores.csv/time_to_targets.csv: {e}") from None


def _json_claims(source: str, text: str) -> Claims:
    data = json.loads(text)
    claims = Claims(source, {}, {})
    # One leaderboard, or several (`algoperf score` of a folder holding external_tuning/
    # and self_tuning/): {"leaderboards": [report, ...]}.
    boards = data["leaderboards"] if "leaderboards" in data else [data]
    for board in boards:
        for entry in board["submissions"]:
            name = str(entry["name"])
            if entry.get("score") is not None:
                claims.scores[name] = _from_json(entry["score"])
            claims.times[name] = {w: _from_json(t)
                                  for w, t in (entry.get("times") or {}).items()}
        if "leaderboards" in data:
            claims.boards.append(frozenset(str(e["name"]) for e in board["submissions"]))
    return claims


def _csv_claims(source: str, text: str) -> Claims:
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    header = [c.strip() for c in rows[0]]
    if header[0] == "":  # pandas' unnamed index column
        header, rows = header[1:], [r[1:] for r in rows]
    if header[0] != "submission":
        raise ValueError("the first column is not 'submission'")
    claims = Claims(source, {}, {})
    for row in rows[1:]:
        name = row[0].strip()
        if header[1:] == ["score"]:
            claims.scores[name] = _claimed(row[1])
        else:
            claims.times[name] = {w: _claimed(v) for w, v in zip(header[1:], row[1:],
                                                                   strict=True)
                                  if re.fullmatch(r"[a-z0-9_]+", w)}
    return claims


def compare_claims(claims: Claims, result: Recomputed) -> Check:
    """Where the claims disagree with the recomputed numbers."""
    source = Path(claims.source).name
    found = {s.name: (board, s) for board in result.leaderboards for s in board.submissions}
    problems = [Problem(source, None, f"claims submission {name!r}, which has no logs here")
                for name in sorted(set(claims.scores) | set(claims.times)) if name not in found]
    compared = 0
    for name, (board, sub) in sorted(found.items()):
        for workload, claimed in sorted(claims.times.get(name, {}).items()):
            actual = sub.times.get(workload, math.inf)
            compared += 1
            if not _agrees(claimed, actual):
                problems.append(Problem(source, None, f"{name} {workload}: claims time "
                                        f"{claimed.text}, the logs give {_show(actual)}"))
        if name in claims.scores:
            members = {s.name for s in board.submissions}
            if members != set(claims.scores) and members not in claims.boards:
                continue  # a score depends on the whole leaderboard: compare like with like
            compared += 1
            if not _agrees(claims.scores[name], sub.score):
                problems.append(Problem(source, None, f"{name}: claims score "
                                        f"{claims.scores[name].text}, the logs give "
                                        f"{sub.score!r}"))
    if not compared and not problems:
        return Check("claims", SKIP, f"{source} claims nothing about these submissions")
    return check("claims", problems, f"{compared} claimed numbers agree with the recomputed "
                 "ones", FAIL)


def _agrees(claimed: Claimed, actual: float) -> bool:
    if math.isinf(claimed.value) or not math.isfinite(actual):
        return math.isinf(claimed.value) and not math.isfinite(actual)
    return abs(claimed.value - actual) <= claimed.tolerance


def _show(value: float) -> str:
    return repr(value) if math.isfinite(value) else "not reached"

