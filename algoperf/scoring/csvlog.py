"""Reading ``eval_measurements.csv``: one row per evaluation, one numeric array per column.

The runner writes these files with pandas (AlgoPerf) or with our logger; both are plain
comma-separated numbers under a header. Only the columns scoring needs are converted, which
keeps reading a whole leaderboard fast. Cells that are empty or not numbers become NaN, as
pandas reads them; a row with more cells than the header is dropped, one with fewer is
padded with NaN (pandas does the same). Each such defect is reported once per file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import operator
from collections.abc import Collection
from pathlib import Path

import numpy as np

from algoperf.scoring import diagnostics as dg

FILENAME = "eval_measurements.csv"


@dataclasses.dataclass(frozen=True)
class EvalLog:
    """A trial's evaluations: ``columns[name][k]`` is column ``name`` at the k-th eval."""

    columns: dict[str, np.ndarray]
    n_evals: int
    header: tuple[str, ...] = ()
    bad_cells: int = 0  # non-empty cells of the converted columns that are not numbers
    ragged_rows: int = 0  # rows whose cell count differs from the header's

    def get(self, name: str) -> np.ndarray | None:
        return self.columns.get(name)


def _to_floats(cells: list[str]) -> tuple[np.ndarray, int]:
    """Converts cells to float64; returns the array and how many cells were not numbers."""
    try:
        return np.array(cells, dtype=np.float64), 0
    except ValueError:
        pass
    values, bad = np.empty(len(cells)), 0
    for k, cell in enumerate(cells):
        try:
            values[k] = float(cell)
        except ValueError:
            values[k] = math.nan
            bad += bool(cell.strip())  # an empty cell is a missing value, not a defect
    return values, bad


def _convert(body: list[list[str]], indices: dict[str, int]) -> tuple[dict[str, np.ndarray], int]:
    """The named columns of ``body`` as float arrays, and the count of non-numeric cells.

    One numpy conversion for the whole table when every cell is a number (the usual case),
    column by column otherwise.
    """
    if not indices:
        return {}, 0
    pick = operator.itemgetter(*indices.values())
    try:
        table = np.array([pick(row) for row in body], dtype=np.float64)
        table = table.reshape(len(body), len(indices))
        return {name: table[:, k] for k, name in enumerate(indices)}, 0
    except ValueError:
        pass
    columns, bad_cells = {}, 0
    for name, index in indices.items():
        columns[name], bad = _to_floats([row[index] for row in body])
        bad_cells += bad
    return columns, bad_cells


def _split_rows(text: str) -> list[list[str]]:
    if '"' in text:  # quoted cells: leave them to the csv module
        try:
            return [row for row in csv.reader(io.StringIO(text, newline="")) if row]
        except csv.Error:
            pass  # unbalanced quotes: read the quotes as text, cell values become NaN
    return [line.split(",") for line in text.splitlines() if line]


def parse_eval_measurements(text: str, wanted: Collection[str] | None = None,
                            where: str | Path | None = None,
                            diag: dg.Diagnostics | None = None) -> EvalLog:
    """Parses the text of an ``eval_measurements.csv``, converting the ``wanted`` columns
    (all if None). Defects become warnings in ``diag``; this never raises on bad content."""
    diag = diag if diag is not None else dg.Diagnostics()
    rows = _split_rows(text)
    if not rows:
        diag.warn(dg.EMPTY_CSV, "empty eval_measurements.csv (no header, no evals); "
                  "the trial counts as not reaching the target", where)
        return EvalLog({}, 0)
    header = [name.strip() for name in rows[0]]
    width = len(header)
    body = rows[1:]
    if not body:
        diag.warn(dg.EMPTY_CSV, "eval_measurements.csv has a header but no evals; the trial "
                  "counts as not reaching the target", where)
    ragged = sum(len(row) != width for row in body)
    if ragged:
        diag.warn(dg.MALFORMED_CSV, f"{ragged} of {len(body)} rows have a cell count that "
                  f"differs from the header's {width} (longer rows dropped, shorter padded)",
                  where)
        body = [row + [""] * (width - len(row)) for row in body if len(row) <= width]
    indices: dict[str, int] = {}
    for index, name in enumerate(header):
        if (wanted is None or name in wanted) and name not in indices:
            indices[name] = index
    columns, bad_cells = _convert(body, indices)
    if bad_cells:
        diag.warn(dg.MALFORMED_CSV, f"{bad_cells} cells are not numbers (read as NaN)", where)
    return EvalLog(columns, len(body), tuple(header), bad_cells, ragged)


def read_eval_measurements(trial_dir: Path, wanted: Collection[str] | None = None,
                           diag: dg.Diagnostics | None = None) -> EvalLog | None:
    """Reads ``trial_dir/eval_measurements.csv``; None if the file is absent or unreadable
    (a warning says which)."""
    diag = diag if diag is not None else dg.Diagnostics()
    path = trial_dir / FILENAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        diag.warn(dg.MALFORMED_CSV, f"cannot read eval_measurements.csv: {e.strerror}", path)
        return None
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        diag.warn(dg.MALFORMED_CSV, "eval_measurements.csv is not valid UTF-8", path)
    return parse_eval_measurements(text, wanted, path, diag)
