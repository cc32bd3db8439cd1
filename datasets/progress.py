"""Download progress: rich bars (one per file and a total) on a terminal, a line per finished
file elsewhere, both on stderr."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from algoperf import terminal


class DownloadProgress:
    """Context manager fed by fetch.Fetcher: ``advance(job, n)`` and ``finished(job, how)``."""

    def __init__(self, label: str, jobs: list[Any]) -> None:
        self.console = terminal.console(stderr=True)
        self._live = self.console.is_terminal
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=self.console,
            disable=not self._live, transient=True)
        self._total = self._progress.add_task(f"{label} (total)",
                                              total=sum(job.size for job in jobs))
        self._tasks = {job.dest: self._progress.add_task(f"  {job.dest.name}", total=job.size)
                       for job in jobs}
        self._start = time.perf_counter()

    def __enter__(self) -> DownloadProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def advance(self, job: Any, nbytes: int) -> None:
        with self._lock:
            self._progress.advance(self._tasks[job.dest], nbytes)
            self._progress.advance(self._total, nbytes)

    def finished(self, job: Any, how: str) -> None:
        word = "already present, sha256 ok" if how == "present" else "downloaded, sha256 ok"
        self.console.print(f"  {job.dest.name}: {job.size:,} bytes {word}", highlight=False)
