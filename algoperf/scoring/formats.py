"""The report as text: a terminal table (rich), Markdown, CSV or JSON.

Each format shows the leaderboard (score, its bootstrap interval, the probability that the
rank holds, workloads counted, speedup) and the time-to-target table per workload. In the
time table ``inf`` means the target was missed, ``-`` that there are no logs, and a mark says
when a finite time earned no credit (over 4x the best, or its held-out variant missed).
"""

from __future__ import annotations

import csv
import io
import json
import math

from algoperf.scoring import report as rp
from algoperf.scoring.report import Report, SubmissionScore
from algoperf.workloads import registry

FORMATS = ("table", "markdown", "csv", "json")
MAX_WARNINGS_SHOWN = 10


def format_time(sub: SubmissionScore, workload: str) -> str:
    """A median time-to-target in seconds, with what became of it."""
    status, time = sub.status(workload), sub.time(workload)
    if status == rp.MISSING:
        return "-"
    if status == rp.NOT_REACHED:
        return "inf"
    text = f"{time:,.1f}"
    if status == rp.OVER_4X:
        return f"{text} (>4x)"
    if status == rp.VARIANT_MISSED:
        return f"{text} (variant missed)"
    return text


def target_text(workload: str) -> str:
    """``accuracy >= 0.95``: the validation target as it is checked."""
    info = registry.get_workload(workload)
    op = ">=" if info.direction == registry.MAXIMIZE else "<="
    return f"{info.target_metric_name} {op} {info.validation_target_value:g}"


def _ci(sub: SubmissionScore) -> str:
    return "" if sub.ci is None else f"{sub.ci[0]:.4f}-{sub.ci[1]:.4f}"


def _probability(sub: SubmissionScore) -> str:
    return "" if sub.rank_probability is None else f"{sub.rank_probability:.2f}"


def _speedup(sub: SubmissionScore) -> str:
    if sub.speedup is None or math.isnan(sub.speedup.geometric_mean):
        return ""
    return f"{sub.speedup.geometric_mean:.3f}x"


def leaderboard_header(report: Report) -> list[str]:
    level = f"{round(report.level * 100)}% CI"
    header = ["rank", "submission", "score", level, "P(rank)", "workloads"]
    if report.reference:
        header.append(f"speedup vs {report.reference}")
    return header


def leaderboard_rows(report: Report) -> list[list[str]]:
    """The leaderboard as display strings, in rank order."""
    rows = []
    for sub in report.submissions:
        row = [str(sub.rank), sub.name, f"{sub.score:.4f}", _ci(sub), _probability(sub),
               f"{sub.workloads_reached}/{len(report.workloads)}"]
        if report.reference:
            row.append(_speedup(sub))
        rows.append(row)
    return rows


def time_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the time-to-target table: one row per workload."""
    header = ["workload", "target", *(s.name for s in report.submissions)]
    rows = []
    for workload in report.reported_workloads:
        label = workload if workload in report.workload_set.columns else f"{workload} (unscored)"
        rows.append([label, target_text(workload),
                     *(format_time(s, workload) for s in report.submissions)])
    return header, rows


def title(report: Report) -> str:
    kind = "dev workloads" if report.workload_set.dev else f"rules {report.rules}"
    label = f" {report.leaderboard}" if report.leaderboard else ""
    return f"AlgoPerf leaderboard{label} ({kind}, {report.ruleset} tuning)"


def caption(report: Report) -> str:
    n = len(report.workloads)
    return (f"score: area under the performance profile over tau in [{report.taus[0]:g}, "
            f"{report.taus[-1]:g}], {n} workload{'' if n == 1 else 's'}")


def render_table(report: Report, console) -> None:
    """Prints the report on a rich Console."""
    from rich.table import Table

    if report.leaderboard:  # one of several: a heading that never wraps names it
        console.print(title(report), style="bold", highlight=False, markup=False,
                      overflow="ignore", crop=False)
    board = Table(title=None if report.leaderboard else title(report), caption=caption(report))
    for k, name in enumerate(leaderboard_header(report)):
        board.add_column(name, justify="left" if k == 1 else "right", no_wrap=k != 1)
    for row in leaderboard_rows(report):
        board.add_row(*row)
    console.print(board)
    header, rows = time_table(report)
    heading = "Time to validation target (s), median over studies of the best trial"
    groups = _fitting_groups(header, rows, console.width)
    for start, stop in groups:
        part = "" if len(groups) == 1 else (f" (submissions {start - 1}-{stop - 2} of "
                                             f"{len(header) - 2})")
        times = Table(title=heading + part)
        for k in (0, 1, *range(start, stop)):
            times.add_column(header[k], justify="left" if k < 2 else "right", no_wrap=k >= 2)
        for row in rows:
            times.add_row(*(row[k] for k in (0, 1, *range(start, stop))))
        console.print(times)
    if report.warnings:
        console.print(f"[yellow]{len(report.warnings)} warnings[/yellow]")
        for warning in report.warnings[:MAX_WARNINGS_SHOWN]:
            console.print(f"  - {warning}", markup=False, highlight=False,
                          soft_wrap=True)  # one line per warning, however long
        if len(report.warnings) > MAX_WARNINGS_SHOWN:
            console.print(f"  ... and {len(report.warnings) - MAX_WARNINGS_SHOWN} more "
                          "(all in --format json or --out)", highlight=False)


def _fitting_groups(header: list[str], rows: list[list[str]],
                    width: int) -> list[tuple[int, int]]:
    """The submission columns (index 2 on) cut into consecutive ranges, each of which fits in
    ``width`` beside the workload and target columns: rich would otherwise shrink columns of
    a large leaderboard to nothing."""
    def need(k: int) -> int:
        return max([len(header[k]), *(len(row[k]) for row in rows)]) + 3  # padding, border

    fixed = need(0) + need(1) + 1
    groups, start, used = [], 2, fixed
    for k in range(2, len(header)):
        if used + need(k) > width and k > start:
            groups.append((start, k))
            start, used = k, fixed
        used += need(k)
    groups.append((start, len(header)))
    return groups


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)])


def render_markdown(report: Report) -> str:
    board = _markdown_table(leaderboard_header(report), leaderboard_rows(report))
    parts = [f"## {title(report)}", "", caption(report), "", board, "",
             "### Time to validation target (s)", "", _markdown_table(*time_table(report))]
    if report.warnings:
        parts += ["", f"### Warnings ({len(report.warnings)})", ""]
        parts += [f"- {w}" for w in report.warnings]
    return "\n".join(parts) + "\n"


def csv_number(value: float) -> str:
    """Numbers as AlgoPerf's pandas-written CSVs have them: ``inf``, empty for NaN."""
    if value is None or math.isnan(value):
        return ""
    return "inf" if math.isinf(value) else repr(float(value))


CSV_COLUMNS = ["rank", "submission", "score", "score_ci_low", "score_ci_high",
               "rank_probability", "workloads_reached", "speedup"]


def render_csv(report: Report) -> str:
    """One row per submission: the leaderboard columns, then ``time/<workload>`` columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    workloads = report.reported_workloads
    writer.writerow([*CSV_COLUMNS, *(f"time/{w}" for w in workloads)])
    writer.writerows(_csv_rows(report, workloads))
    return out.getvalue()


def _csv_rows(report: Report, workloads: list[str]) -> list[list]:
    rows = []
    for sub in report.submissions:
        rows.append([
            sub.rank, sub.name, repr(sub.score),
            "" if sub.ci is None else repr(sub.ci[0]), "" if sub.ci is None else repr(sub.ci[1]),
            "" if sub.rank_probability is None else repr(sub.rank_probability),
            sub.workloads_reached,
            "" if sub.speedup is None else csv_number(sub.speedup.geometric_mean),
            *(csv_number(sub.time(w)) for w in workloads),
        ])
    return rows


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def render_many(reports: list[Report], fmt: str = "table", width: int = 120) -> str:
    """Several leaderboards (one PATH holding ``external_tuning/`` and ``self_tuning/``) as
    one text: tables and Markdown one after the other, each titled with its leaderboard; CSV
    with a ``leaderboard`` column first; JSON as ``{"leaderboards": [report, ...]}``."""
    if len(reports) == 1:
        return render(reports[0], fmt, width)
    if fmt == "json":
        return json.dumps({"leaderboards": [r.to_dict() for r in reports]}, indent=2) + "\n"
    if fmt == "csv":
        workloads = list(dict.fromkeys(w for r in reports for w in r.reported_workloads))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["leaderboard", *CSV_COLUMNS, *(f"time/{w}" for w in workloads)])
        for report in reports:
            writer.writerows([report.leaderboard, *row] for row in _csv_rows(report, workloads))
        return out.getvalue()
    return "\n".join(render(r, fmt, width) for r in reports)


def render(report: Report, fmt: str = "table", width: int = 120) -> str:
    """The report as text in ``fmt`` (one of FORMATS); ``table`` is rendered without colour."""
    if fmt == "table":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None)
        render_table(report, console)
        return console.file.getvalue()
    renderers = {"markdown": render_markdown, "csv": render_csv, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return renderers[fmt](report)
