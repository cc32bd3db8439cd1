"""Reading an event log once: its records, every chain defect, the chain head and the file digest.

`algoperf.logs.events.verify_chain` states the chain rules; `scan` applies the same rules
(a test holds the two to the same defects on any input) but also keeps what verification
needs from the same pass: each usable record with its line number, each line's hash (the
chain head after it, which the witness compares), and the sha256 of the whole file (which the
seal compares). Lines are parsed with orjson, which, unlike ``json``, also rejects the
non-standard NaN and Infinity literals that the writer never emits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from algoperf.logs.events import GENESIS_PREV, RECORD_KEYS, ChainError


@dataclasses.dataclass
class ScannedLog:
    """One event log as read: ``records`` holds (line number, record) for usable records."""

    path: Path
    records: list[tuple[int, dict[str, Any]]]
    errors: list[ChainError]
    line_hashes: list[str]  # sha256 hex of each complete line, in order
    sha256: str  # of the whole file
    content: bytes = dataclasses.field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def head(self) -> str:
        """The chain head: the hash of the last complete line (of nothing, when empty)."""
        return self.line_hashes[-1] if self.line_hashes else GENESIS_PREV

    def prefix_sha256(self, lines: int) -> str | None:
        """sha256 of the file's first ``lines`` complete lines (None if it has fewer)."""
        if lines > len(self.line_hashes):
            return None
        end = 0
        for _ in range(lines):
            end = self.content.index(b"\n", end) + 1
        return hashlib.sha256(self.content[:end]).hexdigest()

    def records_of(self, *types: str) -> list[tuple[int, dict[str, Any]]]:
        return [(n, r) for n, r in self.records if r["type"] in types]


def scan(path: str | os.PathLike, content: bytes | None = None) -> ScannedLog:
    """Reads ``path`` (or its given ``content``) and checks its chain in one pass."""
    path = Path(path)
    if content is None:
        content = path.read_bytes()
    lines = content.split(b"\n")
    fragment = lines.pop()
    records: list[tuple[int, dict[str, Any]]] = []
    errors: list[ChainError] = []
    hashes: list[str] = []
    expected_prev, expected_seq = GENESIS_PREV, 0
    sha256 = hashlib.sha256
    for number, line in enumerate(lines, start=1):
        record, problem = parse_record(line)
        if problem:
            errors.append(ChainError(number, problem))
        if record is not None:
            seq = record["seq"]
            if seq != expected_seq:
                errors.append(ChainError(number, _seq_problem(seq, expected_seq)))
            if record["prev"] != expected_prev:
                what = f"line {number - 1}" if number > 1 else "the empty string"
                errors.append(ChainError(number, f"prev does not match the sha256 of {what}"))
            expected_seq = seq + 1
            if problem is None:
                records.append((number, record))
        else:
            expected_seq += 1
        expected_prev = sha256(line).hexdigest()
        hashes.append(expected_prev)
    if fragment:
        errors.append(ChainError(len(lines) + 1,
                                 f"truncated line: {len(fragment)} bytes without newline"))
    return ScannedLog(path, records, errors, hashes, sha256(content).hexdigest(), content)


def parse_record(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The record on ``line`` and a problem, if any; the record is None when unusable.

    The same shape rules as `algoperf.logs.events.verify_chain`.
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return None, f"bad JSON: {e}"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if tuple(record) != RECORD_KEYS:
        return None, f"keys {list(record)} are not {list(RECORD_KEYS)}"
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool):
        return None, f"seq {record['seq']!r} is not an integer"
    if not isinstance(record["type"], str) or not isinstance(record["data"], dict):
        return record, "type must be a string and data an object"
    if not isinstance(record["prev"], str):
        return record, "prev must be a string"
    return record, None


def _seq_problem(seq: int, expected: int) -> str:
    if seq == expected - 1:
        return f"duplicate seq {seq}"
    if seq < expected:
        return f"seq goes back to {seq} (expected {expected})"
    return f"seq gap: expected {expected}, found {seq}"
