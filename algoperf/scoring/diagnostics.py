"""Warnings about the logs being scored: bad input becomes a warning in the report, not a crash.

Every reader and aggregation step appends to one :class:`Diagnostics`; the report carries the
list, and ``algoperf score --strict`` turns a non-empty list into a non-zero exit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# The kinds of warning, so tools can filter the report's JSON without parsing messages.
MISSING_CSV = "missing_csv"
EMPTY_CSV = "empty_csv"
MALFORMED_CSV = "malformed_csv"
NAN_METRIC = "nan_metric"
CRASHED_TRIAL = "crashed_trial"
UNFINISHED_TRIAL = "unfinished_trial"
MALFORMED_EVENTS = "malformed_events"
UNKNOWN_WORKLOAD = "unknown_workload"
DUPLICATE_TRIAL = "duplicate_trial"
DUPLICATE_SUBMISSION = "duplicate_submission"
INCOMPLETE = "incomplete"
INCONSISTENT = "inconsistent"
MISSING_WORKLOAD = "missing_workload"
UNSCORED_WORKLOAD = "unscored_workload"
OVER_BUDGET = "over_budget"
RULES_MISMATCH = "rules_mismatch"
CONTENDED_TRIAL = "contended_trial"  # the host was busy while it trained (logs.quality)
NO_LOGS = "no_logs"


@dataclasses.dataclass(frozen=True)
class ScoringWarning:
    """One problem found in the input: its kind, a one-line message and where it was found."""

    kind: str
    message: str
    path: str | None = None

    def __str__(self) -> str:
        return f"{self.message} (at {self.path})" if self.path else self.message

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Diagnostics:
    """Collects warnings in the order they were found."""

    warnings: list[ScoringWarning] = dataclasses.field(default_factory=list)

    def warn(self, kind: str, message: str, path: str | Path | None = None) -> None:
        self.warnings.append(ScoringWarning(kind, message, None if path is None else str(path)))

    def __len__(self) -> int:
        return len(self.warnings)
