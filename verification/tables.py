"""The AlgoPerf CSV a trial's events imply, and where the file on disk departs from it.

`eval_measurements.csv` is a derived view of the ``eval`` events, so it can be rebuilt exactly:
the runner's `MetricLogger` appends each eval's metrics plus ``global_step`` and
``preemption_count``; the first row fixes the columns in sorted order and later rows append
new columns in their own order; a ``run_start`` drops every row after step 0 and a ``resume``
every row after its checkpoint's step (those steps are redone). Cells are spelled as
`algoperf.logs.measurements.format_value` spells them, so the rebuilt text must equal the
file byte for byte. When it does not, `compare_eval_csv` names each differing line and cell
and the event line it should have come from.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from typing import Any

from algoperf.logs import events as ev
from algoperf.logs.measurements import format_value
from algoperf.logs.values import NONFINITE_SPELLINGS
from algoperf.verification.findings import Problem

MAX_CELL_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class Row:
    """One eval that stands in the CSV: its cells, and the event it came from."""

    cells: dict[str, str]
    step: int
    line: int  # of the eval event in events.jsonl
    segment: int  # counts the run_start and resume events before it (one per process)
    metrics: dict[str, Any]  # the event's metrics, as logged


@dataclasses.dataclass
class ExpectedTable:
    """The columns and the rows (in order) that the events imply."""

    columns: list[str]
    rows: list[Row]

    def text(self) -> str:
        if not self.columns:
            return ""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[row.cells.get(c, "") for c in self.columns] for row in self.rows])
        return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, str) and value in NONFINITE_SPELLINGS:
        value = NONFINITE_SPELLINGS[value]
    return format_value(value)


def expected_eval_table(records: Sequence[tuple[int, dict[str, Any]]]) -> ExpectedTable:
    """Replays the runner's CSV writes for the ``(line, record)`` pairs of an event log."""
    table = ExpectedTable([], [])
    segment = -1
    for line, record in records:
        kind, data = record["type"], record["data"]
        if kind == ev.RUN_START:
            segment += 1
            _truncate_after(table, 0)
        elif kind == ev.RESUME and isinstance(data.get("global_step"), int):
            segment += 1
            _truncate_after(table, data["global_step"])
        elif kind == ev.EVAL:
            metrics = data.get("metrics")
            step = data.get("global_step")
            if not isinstance(metrics, dict) or not isinstance(step, int):
                continue
            cells = {str(k): _cell(v) for k, v in metrics.items()}
            cells["global_step"] = _cell(step)
            cells["preemption_count"] = _cell(data.get("preemption_count"))
            if not table.columns:
                table.columns = sorted(cells)
            else:
                table.columns += [c for c in cells if c not in table.columns]
            table.rows.append(Row(cells, step, line, max(segment, 0), metrics))
    return table


def _truncate_after(table: ExpectedTable, global_step: int) -> None:
    table.rows = [row for row in table.rows if row.step <= global_step]


def compare_eval_csv(expected: ExpectedTable, actual: bytes | None, csv_name: str,
                     events_name: str) -> list[Problem]:
    """Problems where the CSV bytes ``actual`` (None: the file is missing) differ from what
    the events imply; empty when they are identical."""
    text = expected.text()
    if actual is None:
        if expected.rows:
            return [Problem(csv_name, None, f"missing, but {events_name} has "
                            f"{len(expected.rows)} eval events")]
        return []
    if actual == text.encode():
        return []
    try:
        got = actual.decode("utf-8")
    except UnicodeDecodeError as e:
        return [Problem(csv_name, None, f"not UTF-8 text ({e.reason} at byte {e.start})")]
    want_rows = list(csv.reader(io.StringIO(text)))
    try:
        got_rows = list(csv.reader(io.StringIO(got, newline="")))
    except csv.Error as e:
        return [Problem(csv_name, None, f"not readable as CSV ({e})")]
    problems: list[Problem] = []
    if not want_rows:
        return [Problem(csv_name, 1, f"has {len(got_rows)} lines but {events_name} has no "
                        "eval events")]
    if not got_rows or got_rows[0] != want_rows[0]:
        header = got_rows[0] if got_rows else []
        return [Problem(csv_name, 1, f"header {header} differs from the columns the eval "
                        f"events imply {want_rows[0]}")]
    header = want_rows[0]
    for index in range(1, max(len(want_rows), len(got_rows))):
        line = index + 1
        if index >= len(got_rows):
            row = expected.rows[index - 1]
            problems.append(Problem(csv_name, line, f"row missing: the eval at global_step "
                                    f"{row.step} ({events_name} line {row.line}) has no row"))
            continue
        if index >= len(want_rows):
            problems.append(Problem(csv_name, line, "row not backed by any eval event in "
                                    f"{events_name}"))
            continue
        event_line = expected.rows[index - 1].line
        want, have = want_rows[index], got_rows[index]
        if want == have:
            continue
        if len(have) != len(want):
            problems.append(Problem(csv_name, line, f"{len(have)} cells, the header has "
                                    f"{len(want)}"))
            continue
        for column, w, h in zip(header, want, have, strict=True):
            if w != h:
                problems.append(Problem(csv_name, line, f"{column} is {h!r} but the eval event "
                                        f"({events_name} line {event_line}) says {w!r}"))
        if len(problems) >= MAX_CELL_PROBLEMS:
            break
    if not problems:  # same cells, different bytes: line endings, quoting, a final newline
        problems.append(Problem(csv_name, None, "same cells as the events imply but different "
                                "bytes (line endings, quoting or a missing final newline)"))
    return problems
