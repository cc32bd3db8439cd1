"""Scoring: AlgoPerf's performance profiles and benchmark scores, from AlgoPerf-format logs.

Framework-free (numpy only; never imports JAX or PyTorch): targets, budgets and protocol sizes
come from :mod:`algoperf.workloads.registry`. Reads AlgoPerf's own logs and ours alike
(``<submission>/study_<k>/<workload>_<framework>/trial_<i>/eval_measurements.csv``, plus
``events.jsonl`` where present). See docs/scoring.md for what the numbers mean.

Public API::

    from algoperf.scoring import score, write_outputs, render

    report = score(["runs/my_experiment"], rules="v0.6", ruleset="external")
    report.submissions[0].name, report.submissions[0].score   # rank order
    print(render(report, "table"))           # or "markdown", "csv", "json"
    paths = write_outputs(report, "runs/scoring")   # tables, CSVs, JSON, profile PNG + SVG
    paths["plot_png"]                        # runs/scoring/performance_profile.png

- :func:`score` -> :class:`Report` (``submissions``: :class:`SubmissionScore` in rank order,
  ``warnings``: :class:`ScoringWarning` list; ``to_dict()`` is the JSON form). Ruleset and
  rules version default to the ones the runs record.
- :func:`score_leaderboards` -> one :class:`Report` per leaderboard: a single PATH may hold
  several (``external_tuning/`` and ``self_tuning/``), each labelled (``Report.leaderboard``)
  and scored under its own recorded ruleset. The layout is :mod:`algoperf.scoring.discover`'s,
  which ``algoperf verify`` uses too.
- :func:`write_outputs` writes every output into a directory and returns the paths by role;
  :func:`write_all_outputs` does so for several leaderboards (one subdirectory each).
- :func:`render` returns the report as text (:func:`render_many`: several leaderboards);
  :func:`render_table` prints it on a rich Console (with colour); :func:`plot_profiles` writes
  only the plot.

Building blocks, for tools that score from other sources (e.g. verification):
:func:`~algoperf.scoring.trials.evaluate_trial` (time-to-target of one trial),
:func:`~algoperf.scoring.trials.best_trial`,
:func:`~algoperf.scoring.aggregate.median_over_studies`,
:func:`~algoperf.scoring.performance_profiles.score_times` (4x rule, held-out variants,
profiles, score).
"""

from algoperf.scoring.diagnostics import ScoringWarning
from algoperf.scoring.formats import render, render_many, render_table
from algoperf.scoring.outputs import write_all_outputs, write_outputs
from algoperf.scoring.plots import plot_profiles
from algoperf.scoring.report import Report, SubmissionScore
from algoperf.scoring.scorer import score, score_leaderboards

__all__ = ["Report", "ScoringWarning", "SubmissionScore", "plot_profiles", "render",
           "render_many", "render_table", "score", "score_leaderboards", "write_all_outputs",
           "write_outputs"]
