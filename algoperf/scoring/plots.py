"""The report's plots: performance profiles (rho(tau) over tau in [1, 4]) and each trial's
curve of the target metric against submission time.

Every submission keeps one style across all plots (its colour, line style and marker, in
leaderboard order), so no curve hides another where two coincide: the line styles differ, the
markers sit at staggered points, and earlier curves are drawn wider under later ones. Each
figure has one legend. Drawn with matplotlib's object API on a plain Figure (the Agg renderer
for PNG), so it works without a display and never changes the global pyplot backend.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from algoperf.scoring.curves import Curve
from algoperf.scoring.report import Report
from algoperf.workloads.registry import MAXIMIZE

PLOT_FORMATS = ("png", "svg")

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")  # matplotlib's tab10, strongest contrasts first
_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclasses.dataclass(frozen=True)
class Style:
    """How one submission is drawn in every plot of a report."""

    color: str
    linestyle: str | tuple
    marker: str
    linewidth: float


def style(index: int, count: int) -> Style:
    """The style of the ``index``-th of ``count`` submissions (leaderboard order). Colour,
    line style and marker cycle with different periods; the first is widest so the ones drawn
    over it leave its edges showing."""
    width = 3.0 - 1.6 * index / max(count - 1, 1)
    return Style(_COLORS[index % len(_COLORS)], _LINESTYLES[index % len(_LINESTYLES)],
                 _MARKERS[index % len(_MARKERS)], width)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def profile_figure(report: Report):
    """A matplotlib Figure of the report's performance profiles, one legend entry each."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    count = len(report.submissions)
    points = len(report.taus)
    every = max(points // 8, 1)
    for k, sub in enumerate(report.submissions):
        s = style(k, count)
        # Markers at staggered taus: where curves coincide each one's markers still show.
        offset = (k * every) // max(count, 1)
        ax.plot(report.taus, sub.profile, drawstyle="steps-post", color=s.color,
                linestyle=s.linestyle, linewidth=s.linewidth, marker=s.marker, markersize=7,
                markevery=(offset, every), markerfacecolor="white", markeredgewidth=1.6,
                label=f"{sub.name} (score {sub.score:.4f})", zorder=2 + k)
    ax.set_xlim(report.taus[0], report.taus[-1])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("tau: time to target as a multiple of the fastest submission's time")
    n = len(report.workloads)
    ax.set_ylabel(f"fraction of workloads ({n}) within tau of the fastest")
    kind = "dev workloads" if report.workload_set.dev else f"rules {report.rules}"
    board = f"{report.leaderboard}, " if report.leaderboard else ""
    ax.set_title(f"Performance profiles ({board}{kind}, {report.ruleset} tuning)")
    ax.grid(alpha=0.4)
    if report.submissions:
        ax.legend(title="submission", loc="lower right")
    return fig


def curves_figure(report: Report, workload: str, metric: str, target: float | None,
                  direction: str, curves: Sequence[Curve]):
    """A Figure of every trial's validation ``metric`` on ``workload`` against submission
    time: each study's best trial (the one scoring counts) bold with a marker at every eval,
    the other trials faint, the target as a dashed black line. One legend: a submission per
    entry, plus the target."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    names = [s.name for s in report.submissions]
    styles = {name: style(k, len(names)) for k, name in enumerate(names)}
    shown = []
    for curve in sorted(curves, key=lambda c: c.best):  # best trials on top
        s = styles.get(curve.submission)
        if s is None or curve.times.size == 0:
            continue
        if curve.submission not in shown:
            shown.append(curve.submission)
        if curve.best:
            ax.plot(curve.times, curve.values, color=s.color, linestyle=s.linestyle,
                    linewidth=2.0, marker=s.marker, markersize=5, markerfacecolor="white",
                    markevery=max(curve.times.size // 12, 1), zorder=3)
        else:
            ax.plot(curve.times, curve.values, color=s.color, linestyle=s.linestyle,
                    linewidth=0.9, alpha=0.35, zorder=2)
    handles = [Line2D([], [], color=styles[n].color, linestyle=styles[n].linestyle,
                      linewidth=2.0, marker=styles[n].marker, markerfacecolor="white", label=n)
               for n in names if n in shown]
    if target is not None:
        ax.axhline(target, color="black", linestyle=(0, (4, 2)), linewidth=1.2, zorder=4)
        op = ">=" if direction == MAXIMIZE else "<="
        handles.append(Line2D([], [], color="black", linestyle=(0, (4, 2)), linewidth=1.2,
                              label=f"target {op} {target:g}"))
    _limit_to_the_interesting_range(ax, curves, target)
    ax.set_xlabel("submission time (s)")
    ax.set_ylabel(f"validation {metric}")
    trials = sum(c.times.size > 0 for c in curves)
    ax.set_title(f"{workload}: {_plural(trials, 'trial')} (bold: best trial of each study)",
                 fontsize=10)
    ax.grid(alpha=0.4)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best")
    return fig


def _limit_to_the_interesting_range(ax, curves: Sequence[Curve], target: float | None) -> None:
    """Early evals of a loss can be orders of magnitude off the target; the y range keeps
    the 2nd-98th percentile of all values and the target, so the approach to it is visible."""
    values = np.concatenate([c.values for c in curves] or [np.empty(0)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    low, high = np.percentile(values, [2, 98])
    if target is not None:
        low, high = min(low, target), max(high, target)
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    ax.set_ylim(low - pad, high + pad)


def figure_bytes(fig, fmt: str) -> bytes:
    """The figure encoded as ``fmt`` (png at 150 dpi, or svg without a date, so the same
    report gives the same bytes)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    fig.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    return buffer.getvalue()


def plot_profiles(report: Report, path_stem: str | Path,
                  formats: Sequence[str] = PLOT_FORMATS) -> list[Path]:
    """Writes ``<path_stem>.<fmt>`` for each format (atomically); returns the paths."""
    fig = profile_figure(report)
    written = []
    for fmt in formats:
        path = Path(f"{path_stem}.{fmt}")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(figure_bytes(fig, fmt))
        os.replace(tmp, path)
        written.append(path)
    return written
