"""Reading an event log once: its records, every chain defect, the chain head and the file digest.

`algoperf.logs.events.verify_chain` states the chain rules; `scan` applies the same rules
(a test holds the two to the same defects) but also keeps what verification needs from the
same pass: each usable record with its line number, each line's hash (the chain head after
it, which the witness compares), and the sha256 of the whole file (which the seal compares).

Speed matters (a long run logs a hardware sample every 5 s; a leaderboard holds gigabytes), so
a log is first read on a fast path that does its per-line work in C: msgspec decodes every
line into the record's shape without building its ``data`` (kept as raw JSON, which msgspec
still validates), and the seq and prev columns are compared with the expected ones as whole
lists. Only the records verification reads (all but ``hardware_sample``) get their data
decoded. Any line that does not fit, or any break in the chain, sends the whole log down the
exact line-by-line path that reports each defect. The fast path does not check the order of a
record's keys, which carries no meaning (the chain hash covers the bytes either way); the exact
path does, as verify_chain.

Both paths reject what the writer never emits: NaN and Infinity literals, numbers out of
float range, and lone surrogate escapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import operator
import os
from pathlib import Path
from typing import Any

import msgspec

from algoperf.logs.events import GENESIS_PREV, HARDWARE_SAMPLE, ChainError, chain_records

# Their data is validated like every line's but not decoded: verification does not use it.
DATA_NOT_KEPT = frozenset({HARDWARE_SAMPLE})


class _Record(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    type: str
    t_wall: float
    t_mono: float
    data: msgspec.Raw
    prev: str


_decode_record = msgspec.json.Decoder(_Record).decode
_SEQ, _PREV, _TYPE = (operator.attrgetter(name) for name in ("seq", "prev", "type"))
_HEX = operator.methodcaller("hexdigest")
_decode = msgspec.json.Decoder().decode
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


def loads(data: bytes) -> Any:
    """Any JSON value (raises ValueError when ``data`` is not JSON)."""
    return _decode(data)


@dataclasses.dataclass
class ScannedLog:
    """One event log as read: ``records`` holds (line number, record) for usable records."""

    path: Path
    records: list[tuple[int, dict[str, Any]]]
    errors: list[ChainError]
    line_hashes: list[str]  # sha256 hex of each complete line, in order
    sha256: str  # of the whole file
    content: bytes = dataclasses.field(repr=False)
    # The lines of the records whose data is not kept (hardware samples), in order; on the
    # fast path those records are left out of ``records``.
    sample_lines: list[int] = dataclasses.field(default_factory=list)

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
        if lines == len(self.line_hashes):
            end = self.content.rfind(b"\n") + 1
            if end == len(self.content):
                return self.sha256
        else:
            end = 0
            for _ in range(lines):
                end = self.content.index(b"\n", end) + 1
        return hashlib.sha256(self.content[:end]).hexdigest()

    def records_of(self, *types: str) -> list[tuple[int, dict[str, Any]]]:
        """The usable records of these types, in line order."""
        by_type = self.__dict__.get("_by_type")
        if by_type is None:
            by_type = self.__dict__["_by_type"] = {}
            for number, record in self.records:
                by_type.setdefault(record["type"], []).append((number, record))
        if len(types) == 1:
            return list(by_type.get(types[0], ()))
        return sorted((pair for kind in set(types) for pair in by_type.get(kind, ())),
                      key=lambda pair: pair[0])


def scan(path: str | os.PathLike, content: bytes | None = None) -> ScannedLog:
    """Reads ``path`` (or its given ``content``) and checks its chain in one pass."""
    path = Path(path)
    if content is None:
        content = path.read_bytes()
    lines = content.split(b"\n")
    fragment = lines.pop()
    sha256 = hashlib.sha256
    hashes = list(map(_HEX, map(sha256, lines)))
    fast = _fast_records(lines, hashes)
    errors: list[ChainError] = []
    if fast is None:
        records, errors = _exact_records(lines, hashes)
        sample_lines = [n for n, r in records if r["type"] in DATA_NOT_KEPT]
    else:
        records, sample_lines = fast
    if fragment:
        errors.append(ChainError(len(lines) + 1,
                                 f"truncated line: {len(fragment)} bytes without newline"))
    return ScannedLog(path, records, errors, hashes, sha256(content).hexdigest(), content,
                      sample_lines)


def _fast_records(lines: list[bytes], hashes: list[str],
                  ) -> tuple[list[tuple[int, dict[str, Any]]], list[int]] | None:
    """The records of a log whose every line is a well-formed record and whose chain is
    intact, and the lines of those whose data is not kept; None as soon as anything is off
    (the exact path then says what)."""
    if not lines:
        return [], []
    try:
        parsed = list(map(_decode_record, lines))
    except _DECODE_ERRORS:
        return None
    count = len(lines)
    if list(map(_SEQ, parsed)) != list(range(count)):
        return None
    if list(map(_PREV, parsed)) != [GENESIS_PREV, *hashes[:-1]]:
        return None
    skipped = list(map(DATA_NOT_KEPT.__contains__, map(_TYPE, parsed)))
    records = []
    for index in itertools.compress(range(count), map(operator.not_, skipped)):
        r, number = parsed[index], index + 1
        data = _decode(r.data)
        if type(data) is not dict:
            return None
        records.append((number, {"seq": r.seq, "type": r.type, "t_wall": r.t_wall,
                                 "t_mono": r.t_mono, "data": data, "prev": r.prev}))
    return records, [index + 1 for index in itertools.compress(range(count), skipped)]


def _exact_records(lines: list[bytes], hashes: list[str]
                   ) -> tuple[list[tuple[int, dict[str, Any]]], list[ChainError]]:
    """The chain rules of `algoperf.logs.events.chain_records`, line by line, with this
    module's decoder: the usable records and every defect."""
    records, errors = chain_records(lines, hashes, loads=_decode)
    for _, record in records:
        if record["type"] in DATA_NOT_KEPT:
            record["data"] = {}
    return records, errors
