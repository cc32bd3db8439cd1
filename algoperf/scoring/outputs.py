"""Writing a report's files to an output directory.

Files AlgoPerf's ``score_submissions.py`` also writes keep its names and layout
(``scores.csv``, ``time_to_targets.csv``, ``performance_profile_score.csv``,
``<submission>_summary.csv``); ours add the leaderboard in three formats, the JSON report,
the profile plot (PNG and SVG) and the warnings. Each file is written to a temporary name
and renamed, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from algoperf.errors import UserError
from algoperf.scoring import formats
from algoperf.scoring.plots import PLOT_FORMATS, plot_profiles
from algoperf.scoring.report import Report
from algoperf.scoring.summary import summary_csv


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.#-]+", "__", name)


def _csv(rows: list[list]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def scores_csv(report: Report) -> str:
    """AlgoPerf's ``scores.csv``: ``submission,score``."""
    return _csv([["submission", "score"], *([s.name, repr(s.score)] for s in report.submissions)])


def time_to_targets_csv(report: Report) -> str:
    """AlgoPerf's ``time_to_targets.csv``: median times before the 4x rule, workloads sorted."""
    workloads = sorted(report.reported_workloads)
    rows = [["submission", *workloads]]
    for sub in report.submissions:
        rows.append([sub.name, *(formats.csv_number(sub.time(w)) for w in workloads)])
    return _csv(rows)


def profile_csv(report: Report) -> str:
    """AlgoPerf's ``performance_profile_score.csv``: rho per submission at each tau."""
    rows = [["submission", *(repr(float(t)) for t in report.taus)]]
    rows += [[s.name, *(repr(float(v)) for v in s.profile)] for s in report.submissions]
    return _csv(rows)


def write_all_outputs(reports: Sequence[Report], out_dir: str | os.PathLike,
                      plot_formats: Sequence[str] = PLOT_FORMATS) -> dict[str, Path]:
    """Writes the outputs of one or several leaderboards: one report's files into ``out_dir``
    (as :func:`write_outputs`); several reports' each into ``out_dir/<leaderboard>/``, with
    ``out_dir/report.json`` holding them all (``{"leaderboards": [...]}``). Returns the paths
    by role, prefixed ``<leaderboard>:`` for several."""
    if len(reports) == 1:
        return write_outputs(reports[0], out_dir, plot_formats)
    out = Path(out_dir)
    written = {}
    for report in reports:
        for role, path in write_outputs(report, out / report.leaderboard, plot_formats).items():
            written[f"{report.leaderboard}:{role}"] = path
    try:
        written["json"] = _write(out / "report.json", formats.render_many(list(reports), "json"))
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    return written


def write_outputs(report: Report, out_dir: str | os.PathLike,
                  plot_formats: Sequence[str] = PLOT_FORMATS) -> dict[str, Path]:
    """Writes every output of ``report`` into ``out_dir`` (created if needed); returns the
    written paths by role (``leaderboard``, ``plot_png``, ``summary:<submission>``, ...)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output directory {out}: {e.strerror}") from None
    if not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory.")
    texts = {
        "leaderboard": ("leaderboard.txt", formats.render(report, "table")),
        "leaderboard_markdown": ("leaderboard.md", formats.render(report, "markdown")),
        "leaderboard_csv": ("leaderboard.csv", formats.render(report, "csv")),
        "json": ("report.json", formats.render(report, "json")),
        "scores": ("scores.csv", scores_csv(report)),
        "time_to_targets": ("time_to_targets.csv", time_to_targets_csv(report)),
        "profile_csv": ("performance_profile_score.csv", profile_csv(report)),
        "warnings": ("warnings.txt", "".join(f"{w.kind}: {w}\n" for w in report.warnings)),
    }
    for sub in report.submissions:
        texts[f"summary:{sub.name}"] = (f"{_safe_name(sub.name)}_summary.csv",
                                        summary_csv(sub, report.rules))
    try:
        written = {role: _write(out / name, text) for role, (name, text) in texts.items()}
        for path in plot_profiles(report, out / "performance_profile", plot_formats):
            written[f"plot_{path.suffix[1:]}"] = path
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    return written
