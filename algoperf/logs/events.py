"""The event log: `events.jsonl`, the hash-chained record of a run that verification trusts.

One JSON object per line, keys in this order::

    {"seq": 0, "type": "run_start", "t_wall": ..., "t_mono": ..., "data": {...}, "prev": "..."}

``seq`` counts lines from 0; ``prev`` is the sha256 hex digest of the previous line's UTF-8
bytes without its newline, and the first line's ``prev`` is the sha256 of the empty string.
Editing, removing, reordering or duplicating any line breaks the chain at the next line; the
last line is covered by the chain head (`EventLog.head`), which the orchestrator records
outside the sandbox and `verify_chain(path, head=...)` checks.

Lines are compact ASCII JSON (`json.dumps` with ``separators=(",", ":")``, no key sorting,
``allow_nan=False``); NaN and infinities in ``data`` are written as "NaN", "Infinity" and
"-Infinity" (`algoperf.logs.values`). Each line is written with one ``write`` on an
``O_APPEND`` descriptor and fsynced: events are rare (per eval, not per step), and a record
that `append` returned is on disk. One process writes a log at a time (an exclusive
``flock``); others may read it while it grows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from algoperf.errors import UserError
from algoperf.logs.values import json_safe

EVENTS_FILENAME = "events.jsonl"

RUN_START = "run_start"
TRIAL_START = "trial_start"
EVAL = "eval"
CHECKPOINT = "checkpoint"
CHECKPOINT_DISABLED = "checkpoint_disabled"  # nothing could write the state: step, reason
RESUME = "resume"
ERROR = "error"
RUN_END = "run_end"
LOG_REPAIR = "log_repair"
HARDWARE_SAMPLE = "hardware_sample"  # GPU clocks, temperature, power (algoperf.hardware)



class RunStartData(TypedDict, total=False):
    """``run_start``'s data: what the trial is and what it ran with (the runner writes it;
    resume checks, sweeps, scoring and verification read it). The hardware check's keys
    (``fingerprint``, ``reference``, ``certifiable``, ...) come from ``ReferenceCheck``."""

    workload: str
    framework: str
    rules_version: str
    ruleset: str
    study: int
    trial: int
    submission: str
    submission_sha256: str
    search_space_sha256: str | None
    hyperparameters: dict[str, Any] | None
    seed: int
    master_seed: int
    budget_sec: float
    eval_period_sec: float
    batch_size: int
    eval_batch_size: int
    max_global_steps: int | None
    validation_target: float
    test_target: float | None
    target_metric: str
    fingerprint: dict[str, Any] | None
    image_digest: str | None
    lockfile_sha256: str | None
    dataset_manifest_root: str | None
    processes: int
    devices: int


class EvalData(TypedDict):
    """``eval``'s data: one eval row, as eval_measurements.csv has it."""

    global_step: int
    preemption_count: int
    metrics: dict[str, Any]
    validation_goal_reached: bool
    test_goal_reached: bool


class RunEndData(TypedDict):
    """``run_end``'s data: how the trial ended, and its measurement quality
    (``measurement_quality``, algoperf.logs.quality)."""

    status: str
    reason: str | None
    accumulated_submission_time: float
    global_step: int
    num_evals: int
    error: str | None
    measurement_quality: dict[str, Any] | None


RECORD_KEYS = ("seq", "type", "t_wall", "t_mono", "data", "prev")
GENESIS_PREV = hashlib.sha256(b"").hexdigest()


def line_hash(line: bytes) -> str:
    """The chain hash of one line: sha256 hex of its bytes, newline excluded."""
    return hashlib.sha256(line).hexdigest()


def encode_record(record: Mapping[str, Any]) -> bytes:
    """The canonical line for ``record`` (without newline)."""
    return json.dumps(record, sort_keys=False, separators=(",", ":"), allow_nan=False).encode()


class EventLog:
    """Appends hash-chained events to ``path``: a ``.jsonl`` file, or else a directory (made
    if needed) that holds ``events.jsonl``; the normal place is the trial directory.

    Opening an existing log continues its ``seq`` and chain. If the file ends in a partial
    line (a crash mid-write), that fragment is cut off and a ``log_repair`` event records its
    length and sha256; complete lines are never touched. Use as a context manager, or call
    `close`, which releases the single-writer lock.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.suffix != ".jsonl":
            self.path = self.path / EVENTS_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise UserError(
                f"{self.path} is already open for writing by another run; "
                "wait for that run to end or give this run its own directory"
            ) from None
        if created:
            _fsync_dir(self.path.parent)
        self._lock = threading.Lock()
        try:
            self._next_seq, self._head, self._size, fragment = self._scan()
            if fragment:
                self._cut(fragment)
        except BaseException:
            self.close()
            raise

    def _scan(self) -> tuple[int, str, int, bytes]:
        """Next seq, chain head and size of the complete lines, and any trailing fragment."""
        content = _read_all(self._fd)
        complete_end = content.rfind(b"\n") + 1
        fragment = content[complete_end:]
        if complete_end == 0:
            return 0, GENESIS_PREV, 0, fragment
        lines = content[: complete_end - 1].split(b"\n")
        last = lines[-1]
        try:
            seq = json.loads(last)["seq"]
            if not isinstance(seq, int):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            raise UserError(
                f"{self.path} line {len(lines)} is not an event record, so the log cannot be "
                "continued; check it with verify_chain or move it aside"
            ) from None
        return seq + 1, line_hash(last), complete_end, fragment

    def _cut(self, fragment: bytes) -> None:
        os.ftruncate(self._fd, self._size)
        os.fsync(self._fd)
        self.append(
            LOG_REPAIR,
            {
                "reason": "partial last line (interrupted write) removed",
                "offset": self._size,
                "dropped_bytes": len(fragment),
                "dropped_sha256": hashlib.sha256(fragment).hexdigest(),
            },
        )

    @property
    def head(self) -> str:
        """sha256 of the last line: the chain head, and the ``prev`` of the next record."""
        return self._head

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next record gets (= number of records in the log)."""
        return self._next_seq

    def append(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Writes one event, fsyncs it and returns the record as written."""
        if not isinstance(type, str) or not type:
            raise ValueError(f"event type must be a non-empty string, not {type!r}")
        if not isinstance(data, Mapping):
            raise TypeError(f"event data must be a mapping, not {data.__class__.__name__}")
        safe_data = json_safe(data)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"event log {self.path} is closed")
            record = {
                "seq": self._next_seq,
                "type": type,
                "t_wall": time.time(),
                "t_mono": time.monotonic(),
                "data": safe_data,
                "prev": self._head,
            }
            line = encode_record(record)
            try:
                _write_all(self._fd, line + b"\n")
                os.fsync(self._fd)
            except BaseException:
                # Leave no partial line behind for the next append to chain onto.
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    pass
                raise
            self._size += len(line) + 1
            self._head = line_hash(line)
            self._next_seq += 1
        return record

    def close(self) -> None:
        """Closes the file and releases the writer lock (idempotent)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class ChainError:
    """One defect found by `verify_chain`; ``line`` counts from 1 (0: the file as a whole)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of the complete lines of ``path``.

    A trailing partial line (a write in progress, or a crash) is not a record and is left
    out; `verify_chain` reports it. A complete line that is not JSON raises UserError.
    """
    records = []
    for number, line in enumerate(_complete_lines(path), start=1):
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise UserError(f"{path} line {number} is not valid JSON ({e})") from None
    return records


def verify_chain(path: str | os.PathLike, head: str | None = None) -> list[ChainError]:
    """Every defect in the chain of ``path``, in line order; an empty list means intact.

    Checks each line's JSON and record shape, that ``seq`` counts up by one, that ``prev`` is
    the hash of the line before, and that the file ends with a newline. With ``head`` (the
    chain head recorded elsewhere), also checks the last line, which the chain alone cannot
    protect against removal or editing.
    """
    content = _read_file(path)
    lines = content.split(b"\n")
    fragment = lines.pop()  # b"" when the file ends with a newline
    hashes = [line_hash(line) for line in lines]
    _, errors = chain_records(lines, hashes)
    expected_prev = hashes[-1] if hashes else GENESIS_PREV
    if fragment:
        errors.append(
            ChainError(len(lines) + 1, f"truncated line: {len(fragment)} bytes without newline")
        )
    if head is not None and head != expected_prev:
        errors.append(
            ChainError(len(lines), "chain head does not match: the log was cut short or its "
                       "last line changed")
        )
    return errors


def chain_records(lines: list[bytes], hashes: list[str],
                  loads: Callable[[bytes], Any] = json.loads,
                  ) -> tuple[list[tuple[int, dict[str, Any]]], list[ChainError]]:
    """The chain rules, line by line: the usable records (with their line numbers) and every
    defect. ``hashes`` are the lines' sha256 hex digests; ``loads`` decodes one line (the
    verifier passes its stricter, faster decoder). `verify_chain` and verification's exact
    path both check through here."""
    records: list[tuple[int, dict[str, Any]]] = []
    errors: list[ChainError] = []
    expected_prev, expected_seq = GENESIS_PREV, 0
    for number, line in enumerate(lines, start=1):
        record, problem = parse_record(line, loads)
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
        expected_prev = hashes[number - 1]
    return records, errors


def parse_record(line: bytes, loads: Callable[[bytes], Any] = json.loads,
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """The record on ``line`` and a problem, if any; the record is None when unusable. The
    one statement of a record's shape."""
    try:
        record = loads(line)
    except (ValueError, UnicodeDecodeError) as e:
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


def _complete_lines(path: str | os.PathLike) -> list[bytes]:
    content = _read_file(path)
    end = content.rfind(b"\n")
    return content[:end].split(b"\n") if end >= 0 else []


def _read_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"no event log at {path}") from None


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
