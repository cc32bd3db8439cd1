"""The witness: the host reading a run's event logs live, with its own clock, and signing that.

A run in a sandbox writes its ``events.jsonl`` files into a directory the host can read. The
`Witness` polls that directory from a host thread the sandbox cannot reach: it reads each new
complete line as it appears, keeps a running sha256 of everything it read, and notes, for every
event except the periodic ``hardware_sample`` ones (so: every start, eval, checkpoint, error
and the end), the chain head after that line with the host's own receive times
(``time.time`` and ``time.monotonic``). When the run is over, `Witness.sign` writes one signed
record per trial directory, ``witness_<k>.dsse.json`` (``k`` counts earlier witnesses of the
same trial, e.g. before a preemption): an in-toto Statement whose subject is the prefix of
``events.jsonl`` it saw (its sha256 covers every line, samples included) and whose predicate
lists the observations.

Under ``algoperf docker run`` the witness also records the hardware samples the host took
(`algoperf.hardware.HostSamples`, from the client process, outside the sandbox): each trial's
record lists, under ``hardware_samples``, the samples that bracket the lines it saw live, with
the host's clocks and who sampled (pid, PID namespace). The signature covers them; the runner
in the sandbox writes no ``hardware_sample`` events then.

What this catches, at verification: a log rewritten afterwards (the prefix digest, and the
head of an observed line, differ), a log extended afterwards (lines the witness never saw),
and a run whose clocks were faked inside the sandbox (its claimed durations disagree with the
host's receive times). Lines already in a file when the witness started are counted as
``preexisting_lines``: they were not witnessed as they were written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from algoperf.hardware.sampling import HostSamples
from algoperf.logs import events as ev
from algoperf.logs.atomic import write_atomic
from algoperf.logs.events import EVENTS_FILENAME
from algoperf.verification import dsse, statement
from algoperf.verification.eventlog import loads
from algoperf.verification.keys import SigningKey, TrustedKeys
from algoperf.verification.seal import utc_now

WITNESS_PREFIX = "witness_"
WITNESS_SUFFIX = ".dsse.json"
POLL_SEC = 0.05
RESCAN_SEC = 0.5
UNOBSERVED_TYPES = frozenset({ev.HARDWARE_SAMPLE})  # covered by the digest, not timed
OBSERVATION_FIELDS = ["line", "sha256", "t_wall", "t_mono"]
SAMPLE_FIELDS = ["t_wall", "t_mono", "data"]


def witness_files(trial_dir: Path) -> list[Path]:
    """The trial's witness records, in the order they were made."""
    found = []
    for path in trial_dir.glob(f"{WITNESS_PREFIX}*{WITNESS_SUFFIX}"):
        number = path.name[len(WITNESS_PREFIX):-len(WITNESS_SUFFIX)]
        if number.isdigit():
            found.append((int(number), path))
    return [p for _, p in sorted(found)]


@dataclasses.dataclass
class _Tail:
    """What the witness has read of one events file."""

    path: Path
    started_wall: float
    started_mono: float
    offset: int = 0
    partial: bytes = b""
    lines: int = 0
    head: str = hashlib.sha256(b"").hexdigest()
    digest: Any = dataclasses.field(default_factory=hashlib.sha256)
    inode: int | None = None
    preexisting: int = 0  # lines already there when watching began
    observations: list[list[Any]] = dataclasses.field(default_factory=list)
    anomalies: list[str] = dataclasses.field(default_factory=list)

    def read(self, live: bool) -> None:
        """Reads what was appended since the last call, noting each complete line."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._anomaly(f"{EVENTS_FILENAME} disappeared after {self.lines} lines")
            return
        if self.inode is None:
            self.inode = stat.st_ino
        elif stat.st_ino != self.inode:
            self._anomaly(f"{EVENTS_FILENAME} was replaced by another file after "
                          f"{self.lines} lines")
            return
        if stat.st_size < self.offset:
            self._anomaly(f"{EVENTS_FILENAME} shrank from {self.offset} to {stat.st_size} "
                          "bytes")
            return
        if stat.st_size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(stat.st_size - self.offset)
        t_wall, t_mono = time.time(), time.monotonic()
        self.offset += len(data)
        chunk = self.partial + data
        complete, _, self.partial = chunk.rpartition(b"\n")
        if not _:
            self.partial = chunk
            return
        for line in complete.split(b"\n"):
            self.lines += 1
            self.head = hashlib.sha256(line).hexdigest()
            self.digest.update(line + b"\n")
            if not live:
                self.preexisting = self.lines
            elif _event_type(line) not in UNOBSERVED_TYPES:
                self.observations.append([self.lines, self.head, t_wall, t_mono])

    def _anomaly(self, text: str) -> None:
        if not self.anomalies or self.anomalies[-1] != text:
            self.anomalies.append(text)


def _event_type(line: bytes) -> Any:
    try:
        record = loads(line)
    except ValueError:
        return None  # not a record: observed, and the verifier says what is wrong with it
    return record.get("type") if isinstance(record, dict) else None


class Witness:
    """Watches every ``events.jsonl`` under ``root`` from a background thread.

    Use ``start()`` before the run begins and ``stop()`` once it has ended, then ``sign()``;
    or use it as a context manager around the run (it stops on exit, it does not sign).
    """

    def __init__(self, root: str | os.PathLike, poll_sec: float = POLL_SEC,
                 rescan_sec: float = RESCAN_SEC, observer: dict[str, Any] | None = None,
                 samples: HostSamples | None = None) -> None:
        self.root = Path(root)
        self.samples = samples  # the host's hardware samples, signed into each record
        self.poll_sec = poll_sec
        self.rescan_sec = rescan_sec
        self.observer = dict(observer or {})
        self._tails: dict[Path, _Tail] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started_at = ""
        self.stopped_at = ""

    def start(self) -> Witness:
        self.started_at = utc_now()
        self._discover(live=False)  # what exists now was not witnessed being written
        self._thread = threading.Thread(target=self._loop, name="algoperf-witness", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        next_rescan = 0.0
        while not self._stop.wait(self.poll_sec):
            now = time.monotonic()
            if now >= next_rescan:
                self._discover(live=True)
                next_rescan = now + self.rescan_sec
            self._poll()

    def _discover(self, live: bool) -> None:
        for path in self.root.rglob(EVENTS_FILENAME) if self.root.is_dir() else []:
            if path not in self._tails:
                tail = _Tail(path, time.time(), time.monotonic())
                with self._lock:
                    self._tails[path] = tail
                    tail.read(live)

    def _poll(self) -> None:
        with self._lock:
            for tail in self._tails.values():
                tail.read(live=True)

    def stop(self) -> None:
        """Stops watching after a last look at every file (idempotent)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._discover(live=True)
            self._poll()
            self.stopped_at = utc_now()

    def __enter__(self) -> Witness:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def trial_dirs(self) -> list[Path]:
        return sorted(path.parent for path in self._tails)

    def sign(self, key: SigningKey) -> list[Path]:
        """Writes a signed witness record into each watched trial directory; returns them."""
        self.stop()
        written = []
        for path, tail in sorted(self._tails.items()):
            written.append(_write_record(path.parent, tail, key, self._predicate(tail)))
        return written

    def _predicate(self, tail: _Tail) -> dict[str, Any]:
        return {
            "observer": {"name": "algoperf", "clock": "host time.time and time.monotonic",
                         "poll_sec": self.poll_sec, **self.observer},
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "watch_started": {"t_wall": tail.started_wall, "t_mono": tail.started_mono},
            "events": {"file": EVENTS_FILENAME, "lines": tail.lines, "head": tail.head,
                       "bytes": tail.offset - len(tail.partial),
                       "preexisting_lines": tail.preexisting},
            "unobserved_types": sorted(UNOBSERVED_TYPES),
            "observation_fields": OBSERVATION_FIELDS,
            "observations": tail.observations,
            "anomalies": tail.anomalies,
            **({"hardware_samples": self._samples_of(tail)} if self.samples is not None
               else {}),
        }

    def _samples_of(self, tail: _Tail) -> dict[str, Any]:
        """The host's samples that bracket what this trial's log saw live."""
        assert self.samples is not None
        observed = [obs[3] for obs in tail.observations]
        records = self.samples.around(observed[0], observed[-1]) if observed else []
        return {"source": self.samples.source, "sample_fields": SAMPLE_FIELDS,
                "samples": [[r["t_wall"], r["t_mono"], r["data"]] for r in records]}


def _write_record(trial_dir: Path, tail: _Tail, key: SigningKey,
                  predicate: dict[str, Any]) -> Path:
    subjects = {EVENTS_FILENAME: tail.digest.hexdigest()}
    payload = statement.statement_bytes(statement.statement(subjects, statement.WITNESS,
                                                            predicate))
    path = trial_dir / f"{WITNESS_PREFIX}{len(witness_files(trial_dir))}{WITNESS_SUFFIX}"
    return write_atomic(path, dsse.envelope_bytes(dsse.sign_envelope(payload, key)))


@dataclasses.dataclass(frozen=True)
class Observation:
    line: int  # counting from 1
    sha256: str  # the chain head after the line
    t_wall: float
    t_mono: float


@dataclasses.dataclass(frozen=True)
class HostSample:
    t_wall: float
    t_mono: float
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WitnessRecord:
    """A witness record whose signature verified."""

    name: str
    events_sha256: str  # of the first ``lines`` lines, as the witness read them
    lines: int
    preexisting: int  # lines that were there before the witness watched
    observations: tuple[Observation, ...]  # live, in line order
    anomalies: tuple[str, ...]
    keyid: str
    samples: tuple[HostSample, ...] | None = None  # None: the host took none (plain witness)
    sample_source: dict[str, Any] | None = None  # who sampled: pid, PID namespace, interval


def open_witness(name: str, data: bytes, trusted: TrustedKeys) -> WitnessRecord:
    """The verified content of a witness file. Raises ValueError naming what is wrong."""
    payload, keyid = dsse.open_envelope(data, trusted)
    subjects, predicate = statement.parse_statement(payload, statement.WITNESS)
    if EVENTS_FILENAME not in subjects:
        raise ValueError(f"the witness record does not name {EVENTS_FILENAME}")
    events = predicate.get("events")
    if not isinstance(events, dict) or not all(
            isinstance(events.get(k), int) for k in ("lines", "preexisting_lines")):
        raise ValueError("the witness record has no line counts")
    raw = predicate.get("observations")
    if not isinstance(raw, list) or predicate.get("observation_fields") != OBSERVATION_FIELDS:
        raise ValueError("the witness record has no observations in the expected fields")
    observations = []
    for entry in raw:
        if (not isinstance(entry, list) or len(entry) != 4 or not isinstance(entry[0], int)
                or not isinstance(entry[1], str)
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in entry[2:])):
            raise ValueError(f"malformed observation {entry!r}")
        observations.append(Observation(entry[0], entry[1], float(entry[2]), float(entry[3])))
    anomalies = predicate.get("anomalies") or []
    if not isinstance(anomalies, list):
        raise ValueError("the witness record's anomalies are not a list")
    samples, source = _host_samples(predicate.get("hardware_samples"))
    return WitnessRecord(name, subjects[EVENTS_FILENAME], events["lines"],
                         events["preexisting_lines"], tuple(observations),
                         tuple(str(a) for a in anomalies), keyid, samples, source)


def _host_samples(raw: Any) -> tuple[tuple[HostSample, ...] | None, dict[str, Any] | None]:
    """The record's host samples and their source (None, None for a record without)."""
    if raw is None:
        return None, None
    if (not isinstance(raw, dict) or raw.get("sample_fields") != SAMPLE_FIELDS
            or not isinstance(raw.get("source"), dict)
            or not isinstance(raw.get("samples"), list)):
        raise ValueError("the witness record's hardware samples are not in the expected fields")
    samples = []
    for entry in raw["samples"]:
        if (not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[2], dict)
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in entry[:2])):
            raise ValueError(f"malformed hardware sample {str(entry)[:80]}")
        samples.append(HostSample(float(entry[0]), float(entry[1]), entry[2]))
    return tuple(samples), raw["source"]
