"""What a trial's ``events.jsonl`` adds to scoring: how the run started and how it ended.

Our runner writes ``events.jsonl`` beside the AlgoPerf files (one JSON object per line with
``seq``, ``type``, ``t_wall``, ``t_mono``, ``data``, ``prev``). Scoring takes its times from
``eval_measurements.csv`` so that AlgoPerf's logs and ours score alike; the event log only says
whether the run crashed (``run_end`` status ``failed``) and which rules it ran under. Checking
the hash chain is verification's job, so only the first and the last line are read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from algoperf.logs.quality import RECORD_KEY
from algoperf.scoring import diagnostics as dg

FILENAME = "events.jsonl"
FAILED_STATUSES = frozenset({"failed", "crashed", "error", "diverged"})
_TAIL_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True)
class RunEvents:
    """The ``data`` of a trial's ``run_start`` and ``run_end`` events (None when absent)."""

    start: dict | None
    end: dict | None

    @property
    def status(self) -> str | None:
        return None if self.end is None else self.end.get("status")

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def reason(self) -> str:
        """Why the run ended: the error message if there was one, else the stop reason."""
        if self.end is None:
            return ""
        return str(self.end.get("error") or self.end.get("reason") or "")

    @property
    def quality(self) -> dict | None:
        """run_end's ``measurement_quality`` record (algoperf.logs.quality); None when the
        run did not record one (AlgoPerf's logs, an unfinished run)."""
        found = None if self.end is None else self.end.get(RECORD_KEY)
        return found if isinstance(found, dict) else None

    def recorded(self, *keys: str) -> str | None:
        """The first of ``keys`` present in the run_start data (e.g. ``ruleset``)."""
        for key in keys:
            if self.start and self.start.get(key):
                return str(self.start[key])
        return None


def _first_and_last_lines(path: Path) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        first = f.readline()
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return first.rstrip(b"\n"), tail


def _event(line: bytes, kind: str) -> dict | None:
    """The ``data`` of ``line`` if it is an event of type ``kind``; raises ValueError if the
    line is not a JSON object."""
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    if event.get("type") != kind:
        return None
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def read_run_events(trial_dir: Path, diag: dg.Diagnostics | None = None) -> RunEvents | None:
    """The run's start and end as its ``events.jsonl`` records them; None without the file.

    A last line that is not ``run_end`` means the run never finished (killed, or still
    running): ``end`` is None. Unreadable lines become warnings, never exceptions.
    """
    diag = diag if diag is not None else dg.Diagnostics()
    path = trial_dir / FILENAME
    try:
        first, last = _first_and_last_lines(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        diag.warn(dg.MALFORMED_EVENTS, f"cannot read events.jsonl: {e.strerror}", path)
        return None
    parsed = []
    for line, kind in ((first, "run_start"), (last, "run_end")):
        try:
            parsed.append(_event(line, kind) if line else None)
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            which = "first" if kind == "run_start" else "last"
            diag.warn(dg.MALFORMED_EVENTS, f"unreadable {which} line in events.jsonl", path)
            parsed.append(None)
    return RunEvents(*parsed)
