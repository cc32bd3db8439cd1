"""AlgoPerf's metric CSVs: `measurements.csv` (every scalar) and `eval_measurements.csv` (eval
rows only, the file scoring reads), written the way AlgoPerf's `MetricLogger` writes them.

Column rules (AlgoPerf's, from its pandas read-concat-write): the first row's columns are
sorted alphabetically; a later row with new columns appends them at the end, in the row's
order; missing values are empty. Values are written as pandas writes them: ints as ints,
floats as ``repr`` (shortest round-trip), booleans as True/False.

Differences from AlgoPerf, on purpose:
- Rows are appended in place; the file is rewritten (atomically: temp file + rename) only when
  a new column appears or on `truncate_evals_after`. AlgoPerf re-read and rewrote the whole
  file on every call, non-atomically.
- Values are written exactly: AlgoPerf's re-parse on every rewrite perturbs the last digits
  of old floats, and turns int columns with gaps into floats ("0.0").
- NaN is written "nan" (pandas writes an empty cell); pandas and `float()` both read it back as
  NaN, and a diverged metric stays distinguishable from a missing one.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from algoperf.logs.atomic import write_atomic
from algoperf.logs.values import python_scalar

MEASUREMENTS_FILENAME = "measurements.csv"
EVAL_MEASUREMENTS_FILENAME = "eval_measurements.csv"

logger = logging.getLogger(__name__)


def format_value(value: Any) -> str:
    """One CSV cell, spelled as pandas' ``to_csv`` spells the value (None: empty)."""
    value = python_scalar(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_measurements(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of an AlgoPerf measurements CSV as dicts of raw cells (ours or AlgoPerf's)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class _MeasurementsFile:
    """One CSV file; keeps its header in memory so unchanged columns mean a plain append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = []
        if path.exists():
            self._drop_partial_row()
            header, *_ = self._read() or [[]]
            self.columns = header

    def _read(self) -> list[list[str]]:
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.reader(f))

    def _drop_partial_row(self) -> None:
        """A row cut short by a crash mid-append is removed; complete rows are kept."""
        content = self.path.read_bytes()
        if content and not content.endswith(b"\n"):
            keep = content[: content.rfind(b"\n") + 1]
            logger.warning(
                "%s: dropping a partial last row (%d bytes)", self.path, len(content) - len(keep)
            )
            write_atomic(self.path, keep)

    def append(self, row: Mapping[str, str]) -> None:
        if not self.columns:
            self.columns = sorted(row)
            self._rewrite([self._cells(row)])
            return
        new_columns = [c for c in row if c not in self.columns]
        if new_columns:
            old_rows = self._read()[1:]
            self.columns += new_columns
            padded = [r + [""] * (len(self.columns) - len(r)) for r in old_rows]
            self._rewrite([*padded, self._cells(row)])
            return
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            f.write(_csv_text([self._cells(row)]))

    def _cells(self, row: Mapping[str, str]) -> list[str]:
        return [row.get(column, "") for column in self.columns]

    def _rewrite(self, rows: list[list[str]]) -> None:
        write_atomic(self.path, _csv_text([self.columns, *rows]))

    def truncate_after(self, global_step: int) -> int:
        """Drops rows whose global_step is greater; returns how many were dropped."""
        if not self.path.exists() or "global_step" not in self.columns:
            return 0
        step_index = self.columns.index("global_step")
        rows = self._read()[1:]
        kept = [r for r in rows if not _step_after(r, step_index, global_step)]
        if len(kept) != len(rows):
            self._rewrite(kept)
        return len(rows) - len(kept)


def _step_after(row: list[str], index: int, global_step: int) -> bool:
    try:
        return float(row[index]) > global_step
    except (IndexError, ValueError):
        return False


class MetricLogger:
    """Writes a trial's `measurements.csv` and `eval_measurements.csv` (AlgoPerf semantics).

    The runner logs evals with ``is_eval=True``; submissions log their own scalars through
    ``workload.metrics_logger.append_scalar_metrics(metrics, global_step)``. Opening a trial
    directory that already has the files continues them (resume). Files are complete after
    every call.
    """

    def __init__(self, trial_dir: str | os.PathLike) -> None:
        self.trial_dir = Path(trial_dir)
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        self.measurements_path = self.trial_dir / MEASUREMENTS_FILENAME
        self.eval_measurements_path = self.trial_dir / EVAL_MEASUREMENTS_FILENAME
        self._all = _MeasurementsFile(self.measurements_path)
        self._evals = _MeasurementsFile(self.eval_measurements_path)

    def append_scalar_metrics(
        self,
        metrics: Mapping[str, Any],
        global_step: int,
        preemption_count: int | None = None,
        is_eval: bool = False,
    ) -> None:
        """Adds one row: ``metrics`` plus ``global_step`` (and ``preemption_count`` if given).

        ``metrics`` is not modified (AlgoPerf adds the two keys to the caller's dict).
        Eval rows go to both files, others to `measurements.csv` only.
        """
        row = {str(k): format_value(v) for k, v in metrics.items()}
        row["global_step"] = format_value(global_step)
        if preemption_count is not None:
            row["preemption_count"] = format_value(preemption_count)
        self._all.append(row)
        if is_eval:
            self._evals.append(row)

    def truncate_evals_after(self, global_step: int) -> int:
        """Drops the rows of both files whose global_step is greater than ``global_step``.

        On resume from a checkpoint at ``global_step``, the steps after it are redone, so
        their rows would otherwise appear twice. Returns the number of rows dropped.
        """
        return self._all.truncate_after(global_step) + self._evals.truncate_after(global_step)

    def finish(self) -> None:
        """Ends logging. Every row is already written, so there is nothing to flush."""
