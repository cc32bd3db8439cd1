"""The sweep's own records, in ``<sweep>/jobs/`` beside the results::

    jobs/runs.jsonl               one line per `sweep run` / `sweep resume`: executor, options,
                                  the jobs it launched, the Slurm array job id
    jobs/attempts/job_0007.jsonl  a "start" and an "end" line per attempt of job 7
    jobs/logs/job_0007.log        the output of every attempt of job 7, appended
    jobs/slurm/submit_<n>.sbatch  the batch scripts handed to sbatch

Every record is one JSON line written with a single ``write`` to an ``O_APPEND`` file, so
records of concurrent writers never interleave and a reader sees whole lines only. The trial's
own ``events.jsonl`` stays the record of what the trial did; these files say which process
ran it, where, when, and how it exited. Scoring ignores ``jobs/`` (it holds no workload dirs).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

RUNS_FILE = "runs.jsonl"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Appends ``record`` as one JSON line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete, valid JSON lines of ``path`` (none if it does not exist).

    A line cut off by a killed writer, or garbled, is skipped: the records are advisory and
    the trial's event log decides whether a trial finished.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.split("\n")[:-1]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One launch of a job: its start record and, if the process got to write it, its end."""

    start: dict[str, Any]
    end: dict[str, Any] | None

    @property
    def exit_code(self) -> int | None:
        return None if self.end is None else self.end.get("exit_code")

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end["t"] - self.start["t"]


def attempts_path(jobs_dir: Path, label: str) -> Path:
    return jobs_dir / "attempts" / f"{label}.jsonl"


def read_attempts(jobs_dir: Path, label: str) -> list[Attempt]:
    """The attempts of one job in order; an "end" belongs to the "start" before it."""
    attempts: list[Attempt] = []
    for record in read_records(attempts_path(jobs_dir, label)):
        if record.get("event") == "start" and "t" in record:
            attempts.append(Attempt(record, None))
        elif record.get("event") == "end" and attempts and attempts[-1].end is None:
            attempts[-1] = Attempt(attempts[-1].start, record)
    return attempts


def record_run(jobs_dir: Path, record: dict[str, Any]) -> None:
    append_record(jobs_dir / RUNS_FILE, record)


def read_runs(jobs_dir: Path) -> list[dict[str, Any]]:
    return read_records(jobs_dir / RUNS_FILE)
