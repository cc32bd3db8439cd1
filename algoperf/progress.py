"""Live progress of a run: step, steps/s, submission time against budget, latest eval against
target, one row per trial. On a terminal it is a rich live table; elsewhere (CI, pipes) it
prints a line per finished trial and a status line every few seconds.

The display must not perturb the timed loop, so it has no thread of its own: it draws only when
the runner reports progress (at evals and at most every `runner.PROGRESS_INTERVAL_SEC`, from
the loop, which charges the call to logging time), and then at most once every
`REDRAW_INTERVAL_SEC`; a trial's start and end always draw.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from algoperf import terminal
from algoperf.logs import quality
from algoperf.runner import Snapshot, TrialResult

PLAIN_INTERVAL_SEC = 10.0
REDRAW_INTERVAL_SEC = 1.0


def _fmt_eval(snapshot: Snapshot) -> str:
    if not snapshot.last_eval:
        return "-"
    value = snapshot.last_eval.get(snapshot.target_metric)
    if value is None:
        return "-"
    return f"{snapshot.target_metric.split('/')[-1]} {value:.4f} / {snapshot.target_value:g}"


class LiveProgress:
    """An Observer (see algoperf.runner) that shows every trial of a run as it trains.

    Several runs can share one display (`algoperf.run_pool`): `run_view` gives each its own
    Observer, whose rows carry the run's label.
    """

    def __init__(self, title: str, console: Console | None = None) -> None:
        self.title = title
        self.console = console or terminal.console(stderr=True)
        self.rows: dict[tuple[str, int, int], dict[str, Any]] = {}  # (run, study, trial)
        self._live: Live | None = None
        self._last_plain = 0.0
        self._last_draw = -REDRAW_INTERVAL_SEC
        self._started = False

    def __enter__(self) -> LiveProgress:
        return self

    def _start(self) -> None:
        """Shows the display when the first trial starts, so a run refused during its checks
        prints only its error line."""
        if self._started:
            return
        self._started = True
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, auto_refresh=False,
                              transient=False)  # no refresh thread: drawn from _refresh
            self._live.__enter__()
        else:
            self.console.print(self.title)

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def _table(self) -> Table:
        table = Table(title=self.title, expand=False)
        labelled = any(label for label, _, _ in self.rows)
        for column in ("run",) * labelled + ("study", "trial", "step", "steps/s",
                                             "submission time / budget",
                                             "latest eval / target", "status"):
            table.add_column(column, justify="left" if column in ("run", "status") else "right")
        for (label, study, trial), row in self.rows.items():
            table.add_row(*(label,) * labelled, str(study), str(trial), row["step"], row["rate"],
                          row["time"], row["eval"], row["status"])
        return table

    def _refresh(self, force: bool = True) -> None:
        """Draws the table now (with ``force``) or if the last draw is REDRAW_INTERVAL_SEC old."""
        if self._live is None:
            return
        now = time.monotonic()
        if force or now - self._last_draw >= REDRAW_INTERVAL_SEC:
            self._last_draw = now
            self._live.update(self._table(), refresh=True)

    def run_view(self, label: str) -> _RunView:
        """The Observer of one of several runs shown together, its rows labelled ``label``."""
        return _RunView(self, label)

    def retire(self, label: str, results: list[TrialResult]) -> None:
        """Replaces a finished run's rows by one line above the table, so that a display of
        many runs keeps to the runs in progress."""
        self._start()
        for key in [key for key in self.rows if key[0] == label]:
            del self.rows[key]
        self.console.print(retire_line(label, results))
        self._refresh()

    def trial_started(self, study: int, trial: int, num_trials: int, hyperparameters,
                      label: str = "") -> None:
        self._start()
        self.rows[(label, study, trial)] = {"step": "0", "rate": "-", "time": "-", "eval": "-",
                                     "status": "starting"}
        self._refresh()

    def progress(self, s: Snapshot, label: str = "") -> None:
        row = self.rows.setdefault((label, s.study, s.trial), {})
        row.update(step=str(s.global_step),
                   rate=f"{s.steps_per_sec:,.0f}" if s.steps_per_sec else row.get("rate", "-"),
                   time=f"{s.submission_time:6.1f}s / {s.budget:g}s", eval=_fmt_eval(s),
                   status="training")
        self._refresh(force=False)
        now = time.monotonic()
        if self._live is None and now - self._last_plain >= PLAIN_INTERVAL_SEC:
            self._last_plain = now
            self.console.print(
                f"  {_prefix(label)}study {s.study} trial {s.trial}: step {s.global_step}, "
                f"{s.submission_time:.1f}s of {s.budget:g}s, {_fmt_eval(s)}")

    def trial_finished(self, r: TrialResult, label: str = "") -> None:
        self._start()
        ttt = "not reached" if math.isinf(r.time_to_target) else f"{r.time_to_target:.2f}s"
        status = f"{r.status}: {r.reason}, target {ttt}"
        if r.error:
            status += f" ({r.error})"
        if quality.assess(r.quality).contended:
            status += ", CONTENDED"
        row = self.rows.setdefault((label, r.study, r.trial), {"rate": "-", "eval": "-"})
        row.update(step=str(r.global_step), status=status,
                   time=f"{r.accumulated_submission_time:6.1f}s")
        self._refresh()
        if self._live is None:
            self.console.print(f"  {_prefix(label)}study {r.study} trial {r.trial}: {status}, "
                               f"{r.global_step} steps, {r.num_evals} evals")


def retire_line(label: str, results: list[TrialResult]) -> str:
    """One line for a finished run: its trials, how many reached the target, the fastest."""
    times = [r.time_to_target for r in results if not math.isinf(r.time_to_target)]
    fastest = f", fastest {min(times):.2f}s" if times else ""
    trials = f"{len(results)} trial{'s' if len(results) != 1 else ''}"
    return f"{label}: {trials}, {len(times)} reached the target{fastest}"


def _prefix(label: str) -> str:
    return f"{label}: " if label else ""


class _RunView:
    """One run's Observer on a shared `LiveProgress`."""

    def __init__(self, display: LiveProgress, label: str) -> None:
        self.display, self.label = display, label

    def trial_started(self, study: int, trial: int, num_trials: int, hyperparameters) -> None:
        self.display.trial_started(study, trial, num_trials, hyperparameters, self.label)

    def progress(self, snapshot: Snapshot) -> None:
        self.display.progress(snapshot, self.label)

    def trial_finished(self, result: TrialResult) -> None:
        self.display.trial_finished(result, self.label)
