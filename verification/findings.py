"""What verification finds: problems (file, line, reason), checks, and the verdict they make.

Every check ends in one status. ``fail`` means the logs contradict themselves, their
signatures or the rules; ``uncertifiable`` means nothing is wrong but the run cannot be
certified (unsigned, not on the reference hardware, not in the pinned image, legacy logs);
``note`` is a finding that changes nothing (a trial measured on a contended host);
``skip`` means the check does not apply. The verdict is the worst status over all checks:
any failure fails the whole tree (exit 1), else anything uncertifiable makes it not
certifiable (exit 2), else it is verified (exit 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

PASS, SKIP, UNCERTIFIABLE, FAIL = "pass", "skip", "uncertifiable", "fail"
NOTE = "note"  # a finding, not a failure: it never changes the verdict
_SEVERITY = {PASS: 0, SKIP: 0, NOTE: 0, UNCERTIFIABLE: 1, FAIL: 2}

VERIFIED = "verified"
FAILED = "failed"
NOT_CERTIFIABLE = "not certifiable"
LEGACY = "legacy, unsigned"
EXIT_CODES = {VERIFIED: 0, FAILED: 1, NOT_CERTIFIABLE: 2, LEGACY: 2}

MAX_PROBLEMS_PER_CHECK = 50  # more are counted, not listed


@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding: where (a path relative to the verified root, a line counting from 1 when
    it applies) and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one named check on one trial (or on the whole tree)."""

    name: str
    status: str
    summary: str
    problems: tuple[Problem, ...] = ()
    more_problems: int = 0  # found beyond MAX_PROBLEMS_PER_CHECK

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "problems": [p.to_json() for p in self.problems],
                "more_problems": self.more_problems}


def check(name: str, problems: Iterable[Problem], passed: str,
          status_if_problems: str = FAIL, failed: str | None = None) -> Check:
    """A check that passes with ``passed`` when ``problems`` is empty, and otherwise gets
    ``status_if_problems`` and a summary (``failed``, or the first problem's reason)."""
    found = list(problems)
    if not found:
        return Check(name, PASS, passed)
    summary = failed or found[0].reason
    if len(found) > 1 and failed is None:
        summary += f" (and {len(found) - 1} more)"
    return Check(name, status_if_problems, summary, tuple(found[:MAX_PROBLEMS_PER_CHECK]),
                 max(0, len(found) - MAX_PROBLEMS_PER_CHECK))


def worst(statuses: Iterable[str]) -> str:
    """The most severe of ``statuses`` (PASS when there are none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


@dataclasses.dataclass
class TrialVerdict:
    """Every check on one trial directory."""

    path: str  # relative to the verified root
    kind: str  # "events" (our runs) or "legacy" (AlgoPerf's own logs)
    checks: list[Check]
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # relative path -> sha256
    size: int = 0  # bytes read
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # for tree-level checks

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "status": self.status,
                "checks": [c.to_json() for c in self.checks]}


def verdict_of(statuses: Iterable[str], legacy: bool) -> str:
    """VERIFIED, FAILED, NOT_CERTIFIABLE or LEGACY for a tree with these check statuses."""
    status = worst(statuses)
    if status == FAIL:
        return FAILED
    if legacy:
        return LEGACY
    return NOT_CERTIFIABLE if status == UNCERTIFIABLE else VERIFIED
