"""The leaderboard as one static, self-contained HTML page (``algoperf report``).

The page needs no network to view: the CSS is inline and every plot is an SVG embedded as a
``data:`` URI (an ``<img>``, so the ids inside one plot cannot clash with another's), with no
script. It shows, per leaderboard: the rules version and ruleset; the scores with their
bootstrap intervals and rank odds; the performance profiles; per workload the time to target
with, beside it, the steps to target, the median step time and whether the host was contended
(from our runs' ``measurement_quality`` record, ``-`` for logs without it, as AlgoPerf's);
each trial's curve of the target metric against submission time (a plot per workload); and
the scoring warnings, missing studies and contended timing first. Above them, the verification
verdict of every signed run directory (:mod:`algoperf.scoring.verdicts`).

Markup is built with :func:`html.escape` on every value that comes from the logs; the page is
small and fixed, so a template engine would add a dependency and no safety.
"""

from __future__ import annotations

import base64
import collections
import datetime
import math
import os
import re
from collections.abc import Sequence
from html import escape
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from algoperf.errors import UserError
from algoperf.logs import quality
from algoperf.scoring import diagnostics as dg
from algoperf.scoring import formats
from algoperf.scoring import report as rp
from algoperf.scoring.bootstrap import DEFAULT_REPLICATES
from algoperf.scoring.curves import workload_curves
from algoperf.scoring.plots import curves_figure, figure_bytes, profile_figure, style
from algoperf.scoring.report import Report, SubmissionScore
from algoperf.scoring.scorer import score_leaderboards
from algoperf.scoring.verdicts import RunVerdict, verify_signed
from algoperf.workloads import registry

INDEX = "index.html"
NONE = "-"  # a measure the logs do not record

# Warnings about the runs themselves come first: they change what the numbers mean.
KIND_WORDS = {
    dg.INCOMPLETE: "missing studies or trials",
    dg.MISSING_WORKLOAD: "missing workloads",
    dg.CONTENDED_TRIAL: "contended timing",
    dg.CRASHED_TRIAL: "crashed trials",
    dg.UNFINISHED_TRIAL: "unfinished trials",
    dg.OVER_BUDGET: "over the time budget",
    dg.RULES_MISMATCH: "scored under other rules than recorded",
    dg.INCONSISTENT: "inconsistent protocols",
    dg.MISSING_CSV: "missing eval logs",
    dg.EMPTY_CSV: "empty eval logs",
    dg.MALFORMED_CSV: "malformed eval logs",
    dg.NAN_METRIC: "NaN metrics",
    dg.MALFORMED_EVENTS: "malformed event logs",
    dg.UNKNOWN_WORKLOAD: "unknown workloads",
    dg.DUPLICATE_TRIAL: "duplicate trials",
    dg.DUPLICATE_SUBMISSION: "duplicate submissions",
    dg.UNSCORED_WORKLOAD: "workloads outside the score",
    dg.NO_LOGS: "folders without logs",
}

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --band: #f6f8fa;
        --bad: #b3261e; --warn: #8a5a00; --good: #1a7f37; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 32px 64px; max-width: 1320px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 28px 0 8px; }
p.lede, .muted { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.status { white-space: nowrap; }
tbody tr:hover { background: #fbfcfd; }
td.rank { font-weight: 700; } td.score { font-weight: 700; }
.status-reached { color: var(--good); } .status-missed { color: var(--bad); }
.status-voided { color: var(--warn); }
.swatch { margin-right: 6px; vertical-align: middle; }
figure { margin: 8px 0 16px; }
figure img.plot { display: block; width: 100%; height: auto; border: 1px solid var(--line);
                  background: white; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.profile { max-width: 820px; }
.curves { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr));
          gap: 16px; }
.verdict { padding: 10px 14px; border-left: 5px solid var(--line); background: var(--band);
           margin: 8px 0; }
.verdict.verified { border-color: var(--good); } .verdict.failed { border-color: var(--bad); }
.verdict.uncertifiable { border-color: var(--warn); }
.warnings li { margin: 2px 0; } .warnings .kind { font-weight: 600; }
.highlight { color: var(--warn); font-weight: 600; }
code { font-size: 13px; background: var(--band); padding: 1px 4px; border-radius: 3px; }
details summary { cursor: pointer; }
nav a { margin-right: 14px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
"""


def _version() -> str:
    try:
        return version("algoperf")
    except PackageNotFoundError:
        return "unknown"


def slug(text: str) -> str:
    """An HTML id made of ``text``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "leaderboard"


def svg_image(fig, alt: str, css_class: str = "plot") -> str:
    """A matplotlib Figure as an ``<img>`` whose source is the SVG itself (a data: URI)."""
    data = base64.b64encode(figure_bytes(fig, "svg")).decode("ascii")
    return (f'<img class="{css_class}" alt="{escape(alt)}" '
            f'src="data:image/svg+xml;base64,{data}">')


def _table(header: Sequence[str], rows: Sequence[str], css_class: str,
           numeric: Sequence[int] = ()) -> str:
    """A table from escaped-ready header words and already built ``<tr>`` rows."""
    heads = "".join(f'<th class="num">{escape(h)}</th>' if k in numeric
                    else f"<th>{escape(h)}</th>" for k, h in enumerate(header))
    return (f'<table class="{css_class}"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _cell(text: str, css_class: str = "") -> str:
    klass = f' class="{css_class}"' if css_class else ""
    return f"<td{klass}>{escape(text)}</td>"


_DASHES = {"-": "", "--": "6 3", ":": "1.5 3", "-.": "7 3 1.5 3"}


def _swatch(index: int, count: int) -> str:
    """A short line in the submission's plot colour and line style, for table rows."""
    s = style(index, count)
    if isinstance(s.linestyle, tuple):
        dashes = " ".join(f"{d * 1.5:g}" for d in s.linestyle[1])
    else:
        dashes = _DASHES[s.linestyle]
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (f'<svg class="swatch" width="30" height="10" aria-hidden="true"><line x1="1" y1="5" '
            f'x2="29" y2="5" stroke="{s.color}" stroke-width="2.5"{dash}/></svg>')


def leaderboard_table(report: Report) -> str:
    """Rank, score, its interval, P(rank), the whole rank distribution and workloads."""
    level = f"{round(report.level * 100)}% CI"
    header = ["rank", "submission", "score", level, "P(rank)", "P(each rank)", "workloads"]
    if report.reference:
        header.append(f"speedup vs {report.reference}")
    count = len(report.submissions)
    rows = []
    for k, sub in enumerate(report.submissions):
        ci = NONE if sub.ci is None else f"{sub.ci[0]:.4f} - {sub.ci[1]:.4f}"
        odds = NONE if sub.rank_probability is None else f"{sub.rank_probability:.2f}"
        spread = NONE if sub.rank_distribution is None else ", ".join(
            f"{r}: {p:.2f}" for r, p in enumerate(sub.rank_distribution, 1) if p > 0)
        cells = [_cell(str(sub.rank), "num rank"),
                 f"<td>{_swatch(k, count)}{escape(sub.name)}</td>",
                 _cell(f"{sub.score:.4f}", "num score"), _cell(ci, "num ci"),
                 _cell(odds, "num p-rank"), _cell(spread, "rank-distribution"),
                 _cell(f"{sub.workloads_reached}/{len(report.workloads)}", "num reached")]
        if report.reference:
            speedup = sub.speedup.geometric_mean if sub.speedup else math.nan
            cells.append(_cell(NONE if math.isnan(speedup) else f"{speedup:.3f}x", "num"))
        rows.append(f'<tr data-submission="{escape(sub.name)}">{"".join(cells)}</tr>')
    return _table(header, rows, "leaderboard", numeric=(0, 2, 3, 4, 6, 7))


def _median_of_best(sub: SubmissionScore, workload: str, key: str) -> float | None:
    """Median over studies of ``key`` in the best trial's measurement-quality record (the
    trial whose time counts); None when no best trial records it."""
    result = sub.workloads.get(workload)
    found = []
    for study in result.studies if result else ():
        record = study.best.quality if study.best is not None else None
        value = quality.number(record.get(key)) if isinstance(record, dict) else None
        if value is not None:
            found.append(value)
    return float(np.median(found)) if found else None


def _contention(sub: SubmissionScore, workload: str) -> str:
    """``'1 of 3 contended'`` over the trials that recorded their host's contention."""
    result = sub.workloads.get(workload)
    judged = [quality.assess(t.quality) for t in (result.trials if result else ())]
    recorded = [a for a in judged if a.recorded]
    if not recorded:
        return NONE
    contended = sum(a.contended is True for a in recorded)
    unknown = sum(a.contended is None for a in recorded)
    text = f"{contended} of {len(recorded)} contended"
    return text + (f" ({unknown} unknown)" if unknown else "")


_STATUS_CLASS = {rp.REACHED: "status-reached", rp.NOT_REACHED: "status-missed",
                 rp.MISSING: "", rp.OVER_4X: "status-voided", rp.VARIANT_MISSED: "status-voided"}


def time_table(report: Report) -> str:
    """Per workload and submission: time to target, what became of it, steps to target,
    median step time and contention."""
    header = ["workload", "validation target", "submission", "time to target (s)", "status",
              "steps to target", "median step time (ms)", "host"]
    rows = []
    for workload in report.reported_workloads:
        label = workload if workload in report.workload_set.columns else f"{workload} (unscored)"
        for k, sub in enumerate(report.submissions):
            steps = _median_of_best(sub, workload, "steps_to_target")
            step_sec = _median_of_best(sub, workload, "median_step_sec")
            status = sub.status(workload)
            lead = ""
            if k == 0:
                span = len(report.submissions)
                lead = (f'<td rowspan="{span}">{escape(label)}</td>'
                        f'<td rowspan="{span}">{escape(formats.target_text(workload))}</td>')
            cells = [_cell(sub.name),
                     _cell(formats.format_time(sub, workload), "num time"),
                     _cell(status, f"status {_STATUS_CLASS[status]}"),
                     _cell(NONE if steps is None else f"{steps:,.0f}", "num steps"),
                     _cell(NONE if step_sec is None else f"{step_sec * 1e3:.3g}", "num step-time"),
                     _cell(_contention(sub, workload), "host")]
            rows.append(f'<tr data-workload="{escape(workload)}" '
                        f'data-submission="{escape(sub.name)}">{lead}{"".join(cells)}</tr>')
    return _table(header, rows, "times", numeric=(3, 5, 6))


def curves_section(report: Report) -> str:
    """One plot per workload of every trial's validation target metric over time."""
    figures = []
    for workload in report.reported_workloads:
        curves = workload_curves(report, workload)
        if not curves:
            continue
        info = registry.get_workload(workload)
        fig = curves_figure(report, workload, info.target_metric_name,
                            info.validation_target_value, info.direction, curves)
        alt = f"validation {info.target_metric_name} against submission time on {workload}"
        figures.append(f'<figure data-workload="{escape(workload)}">'
                       f"{svg_image(fig, alt)}</figure>")
    if not figures:
        return '<p class="muted">No trial has an eval log with the target metric.</p>'
    return f'<div class="curves">{"".join(figures)}</div>'


def warnings_section(report: Report) -> str:
    """The warnings grouped by kind: missing studies and contended timing first."""
    if not report.warnings:
        return '<p class="no-warnings">No warnings: every study and trial the rules ask for ' \
               "is present and no trial ran on a contended host.</p>"
    groups: dict[str, list[dg.ScoringWarning]] = collections.defaultdict(list)
    for warning in report.warnings:
        groups[warning.kind].append(warning)
    order = list(KIND_WORDS)
    items = []
    for kind in sorted(groups, key=lambda k: order.index(k) if k in order else len(order)):
        found = groups[kind]
        words = KIND_WORDS.get(kind, kind)
        mark = ' class="highlight"' if kind in (dg.INCOMPLETE, dg.MISSING_WORKLOAD,
                                                dg.CONTENDED_TRIAL) else ""
        listed = "".join(f"<li>{escape(str(w))}</li>" for w in found)
        items.append(f'<li data-kind="{escape(kind)}"><details><summary><span{mark}>'
                     f'{escape(words)}</span> <span class="kind">({len(found)})</span> '
                     f"<code>{escape(kind)}</code></summary><ul>{listed}</ul></details></li>")
    return f'<ul class="warnings">{"".join(items)}</ul>'


def _facts(report: Report) -> str:
    held = ", ".join(f"{v} (for {b})" for v, b in report.workload_set.held_out.items())
    if report.workload_set.dev:
        rules = f"{report.rules} (dev workloads: no official protocol)"
    else:
        rules = report.rules
    boot = (f"{report.bootstrap_replicates} replicates over studies, seed {report.seed}"
            if report.bootstrap_replicates else "off")
    facts = [("rules version", rules), ("ruleset", f"{report.ruleset} tuning"),
             ("workloads scored", ", ".join(report.workloads) or NONE),
             ("held-out variants", held or NONE), ("bootstrap", boot),
             ("score", formats.caption(report).removeprefix("score: "))]
    body = "".join(f"<dt>{escape(k)}</dt><dd class=\"fact-{slug(k)}\">{escape(v)}</dd>"
                   for k, v in facts)
    return f'<dl class="facts">{body}</dl>'


def leaderboard_section(report: Report) -> str:
    """Everything the page shows about one leaderboard."""
    ident = slug(report.leaderboard or "leaderboard")
    n = len(report.workloads)
    profile = svg_image(profile_figure(report), "performance profiles", "plot")
    return f"""
<section class="board" id="board-{ident}">
<h2>{escape(formats.title(report))}</h2>
{_facts(report)}
<h3>Scores</h3>
{leaderboard_table(report)}
<p class="muted">Score: the area under the performance profile over tau in [1, 4], divided by
3. Interval and P(rank): bootstrap over studies (each submission's studies redrawn with
replacement, the leaderboard scored again); P(rank) is the share of replicates in which the
submission keeps its rank.</p>
<h3>Performance profiles</h3>
<figure class="profile">{profile}
<figcaption>For each tau, the fraction of the {n} workload{'' if n == 1 else 's'} on which a
submission reached the target within tau times the fastest submission's time.</figcaption>
</figure>
<h3>Time to target per workload</h3>
{time_table(report)}
<p class="muted">Time: median over studies of the best trial's submission time at the first
eval meeting the validation target (<code>inf</code>: missed). Steps to target and median step
time: median over studies of the best trial's record; host: trials whose host was contended
while they trained (other processes, steal, throttling). <code>{NONE}</code>: the logs do not
record it (AlgoPerf's own logs).</p>
<h3>Training curves</h3>
{curves_section(report)}
<h3>Warnings ({len(report.warnings)})</h3>
{warnings_section(report)}
</section>"""


def verification_section(verdicts: Sequence[RunVerdict], run_dirs: Sequence[Path]) -> str:
    """The verdict of each signed run directory, or a line saying none is signed."""
    if not verdicts:
        return ('<p class="verdict unsigned">No run here is signed (sealed): there is no '
                "verification verdict. <code>algoperf verify</code> checks unsigned logs for "
                "consistency.</p>")
    blocks = []
    for v in verdicts:
        klass = {"verified": "verified", "failed": "failed"}.get(v.verdict, "uncertifiable")
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(v.trials_by_status.items()))
        keys = (f"{v.trusted_keys} trusted key{'' if v.trusted_keys == 1 else 's'}"
                if v.trusted_keys else "no trusted key (pass --pubkey)")
        findings = "".join(
            f"<li><code>{escape(f.check)}</code> {escape(f.status)}: {escape(f.summary)}"
            + (f" ({f.count}x)" if f.count > 1 else "") + "</li>" for f in v.findings)
        blocks.append(
            f'<div class="verdict {klass}" data-path="{escape(str(v.path))}">'
            f"<strong>{escape(str(v.path))}: {escape(v.explanation)}</strong>"
            f'<div class="muted">{v.trials} trial{"" if v.trials == 1 else "s"} '
            f"({escape(statuses)}); {escape(keys)}</div>"
            + (f"<ul>{findings}</ul>" if findings else "") + "</div>")
    unsigned = len(run_dirs) - len(verdicts)
    tail = (f'<p class="muted">{unsigned} of the run folders hold no signed run.</p>'
            if unsigned else "")
    return "".join(blocks) + tail


def render_page(reports: Sequence[Report], verdicts: Sequence[RunVerdict],
                run_dirs: Sequence[Path]) -> str:
    """The whole page as a string."""
    boards = "".join(leaderboard_section(r) for r in reports)
    nav = ""
    if len(reports) > 1:
        nav = "<nav>" + "".join(
            f'<a href="#board-{slug(r.leaderboard or "leaderboard")}">{escape(r.leaderboard)}'
            "</a>" for r in reports) + "</nav>"
    sources = ", ".join(f"<code>{escape(str(p))}</code>" for p in run_dirs)
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rules = ", ".join(sorted({f"rules {r.rules}, {r.ruleset} tuning" for r in reports}))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AlgoPerf leaderboard ({escape(rules)})</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header>
<h1>AlgoPerf leaderboard</h1>
<p class="lede">Training algorithms timed to a validation target on each workload, scored by
performance profiles. From {sources}.</p>
{nav}
</header>
<section id="verification">
<h2>Verification</h2>
{verification_section(verdicts, run_dirs)}
</section>
{boards}
<footer>Made by algoperf {escape(_version())} on {made}. A static page: no script, no network.
</footer>
</body>
</html>
"""


def write_report(run_dirs: list[Path], out_dir: Path, *, rules: str | None = None,
                 ruleset: str | None = None, bootstrap_replicates: int = DEFAULT_REPLICATES,
                 seed: int = 0, pubkeys: Sequence[str | os.PathLike] = ()) -> Path:
    """Scores the runs under ``run_dirs`` (as ``algoperf score`` does: one page section per
    leaderboard), verifies the signed ones with ``pubkeys`` trusted, and writes
    ``out_dir/index.html``; returns its path."""
    run_dirs = [Path(p) for p in run_dirs]
    reports = score_leaderboards(run_dirs, rules=rules, ruleset=ruleset,
                                 bootstrap_replicates=bootstrap_replicates, seed=seed)
    page = render_page(reports, verify_signed(run_dirs, pubkeys), run_dirs)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / INDEX
        tmp = path.with_name(f".{INDEX}.tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"output path {out} exists and is not a directory; pass a folder "
                        "for --out.") from None
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {e.strerror}") from None
    return path
