"""The performance-profile plot: one step curve per submission, rho(tau) over tau in [1, 4].

Drawn with matplotlib's object API on a plain Figure (the Agg renderer for PNG), so it works
without a display and never changes the global pyplot backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from algoperf.scoring.report import Report

PLOT_FORMATS = ("png", "svg")


def profile_figure(report: Report):
    """A matplotlib Figure of the report's performance profiles."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for sub in report.submissions:
        ax.plot(report.taus, sub.profile, drawstyle="steps-post", linewidth=2,
                label=f"{sub.name} ({sub.score:.4f})")
    ax.set_xlim(report.taus[0], report.taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: time-to-target ratio to the fastest submission")
    ax.set_ylabel(f"fraction of the {len(report.workloads)} workloads within tau")
    kind = "dev workloads" if report.workload_set.dev else f"rules {report.rules}"
    ax.set_title(f"Performance profiles ({kind}, {report.ruleset}-tuning)")
    ax.grid(alpha=0.4)
    if report.submissions:
        ax.legend(title="submission (score)", loc="lower right")
    return fig


def plot_profiles(report: Report, path_stem: str | Path,
                  formats: Sequence[str] = PLOT_FORMATS) -> list[Path]:
    """Writes ``<path_stem>.<fmt>`` for each format (atomically); returns the paths."""
    fig = profile_figure(report)
    written = []
    for fmt in formats:
        path = Path(f"{path_stem}.{fmt}")
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=fmt, dpi=150)
        os.replace(tmp, path)
        written.append(path)
    return written
