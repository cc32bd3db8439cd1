"""``score()``: read the logs under some paths and score them as AlgoPerf does.

The pipeline: find submissions and trials (``discover``), read each trial's
``eval_measurements.csv`` (``csvlog``) and ``events.jsonl`` (``events``), time-to-target per
trial (``trials``), best trial per study and median over studies (``aggregate``), the
workload set and protocol checks (``protocol``), profiles and scores (``profiles``), then the
bootstrap and speedups. Targets, budgets and protocol sizes come from the workload registry.
"""

from __future__ import annotations

import collections
import json
import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from algoperf.errors import UserError
from algoperf.scoring import diagnostics as dg
from algoperf.scoring.aggregate import WorkloadResult, aggregate_workloads
from algoperf.scoring.bootstrap import DEFAULT_LEVEL, DEFAULT_REPLICATES, bootstrap
from algoperf.scoring.csvlog import FILENAME as CSV_FILENAME
from algoperf.scoring.csvlog import read_eval_measurements
from algoperf.scoring.discover import SubmissionLogs, find_leaderboards, find_submissions
from algoperf.scoring.events import RunEvents, read_run_events
from algoperf.scoring.performance_profiles import score_times
from algoperf.scoring.protocol import WorkloadSet, check_counts, choose_workloads
from algoperf.scoring.report import Report, SubmissionScore, classify
from algoperf.scoring.speedups import speedup
from algoperf.scoring.trials import ScoredTrial, evaluate_trial, wanted_columns
from algoperf.workloads import registry

RULESETS = ("external", "self")


def _recorded_protocol(events: RunEvents | None,
                       trial_dir: os.PathLike) -> tuple[str | None, str | None]:
    """The (tuning ruleset, rules version) a trial says it ran under: from its run_start
    event, else the ruleset from AlgoPerf's flags_0.json (which has no rules version)."""
    if events is not None and events.start:
        return events.recorded("ruleset", "tuning_ruleset"), events.recorded("rules_version")
    try:
        with open(os.path.join(trial_dir, "flags_0.json")) as f:
            found = json.load(f).get("tuning_ruleset")
    except (OSError, ValueError, AttributeError):
        return None, None
    return (str(found) if found else None), None


def _majority(values: Sequence[str | None], known: Sequence[str]) -> str | None:
    counts = collections.Counter(v for v in values if v in known)
    return counts.most_common(1)[0][0] if counts else None


def _resolve(what: Callable[[str], str], flag: str, given: str | None,
             recorded: dict[str, str | None], known: Sequence[str], default: str,
             where: dict[str, os.PathLike], diag: dg.Diagnostics) -> str:
    """The ruleset (or rules version) to score under: ``given`` (the explicit option), else
    the one most submissions record, else ``default``. Submissions that record another get
    one warning per recorded value, naming them all."""
    used = given or _majority(list(recorded.values()), known) or default
    others: dict[str, list[str]] = {}
    for name, value in recorded.items():
        if value is not None and value != used:
            others.setdefault(value, []).append(name)
    for value, names in others.items():
        ran, are, it = ("run", "are", "them") if len(names) > 1 else ("ran", "is", "it")
        if given is not None:
            why = f"as {flag} {given} asks; omit {flag} (or pass {flag} {value})"
        else:
            why = f"which most of its leaderboard records; score {it} alone"
        diag.warn(dg.RULES_MISMATCH, f"{', '.join(names)} {ran} under {what(value)} but {are} "
                  f"scored under {what(used)}, {why} to use the recorded one", where[names[0]])
    return used


def _ruleset_words(value: str) -> str:
    return f"the {value!r} tuning ruleset"


def _rules_words(value: str) -> str:
    return f"rules {value}"


def _read_trials(submission: SubmissionLogs, diag: dg.Diagnostics,
                 ) -> tuple[list[ScoredTrial], tuple[str | None, str | None]]:
    """The submission's trial results and the (ruleset, rules version) it records."""
    results, seen, recorded = [], {}, (None, None)
    for trial in submission.trials:
        info = registry.get_workload(trial.workload)
        log = read_eval_measurements(trial.path, wanted_columns(info), diag)
        events = read_run_events(trial.path, diag)
        if log is None and not (events is not None and events.failed):
            diag.warn(dg.MISSING_CSV, f"{submission.name}: no eval_measurements.csv; trial "
                      "skipped (as AlgoPerf does)", trial.path)
            continue
        key = (trial.study, trial.workload_dir, trial.trial)
        if key in seen:
            diag.warn(dg.DUPLICATE_TRIAL, f"{submission.name}: {'/'.join(key)} also in "
                      f"{seen[key]}; both count as trials of the study (as in AlgoPerf)",
                      trial.path)
        seen.setdefault(key, trial.experiment)
        if recorded == (None, None):  # one trial tells how the whole submission was run
            recorded = _recorded_protocol(events, trial.path)
        results.append(evaluate_trial(trial, log, events, info, diag))
    return results, recorded


def _refuse_if_nothing_is_an_algoperf_log(results: dict[str, list[ScoredTrial]]) -> None:
    """A silently wrong score must never come out: when some trials' eval_measurements.csv
    are not AlgoPerf eval logs and no other trial has a usable one, scoring stops with one
    line naming the first (with good trials beside them, each bad one is a warning)."""
    trials = [t for ts in results.values() for t in ts]
    bad = [t for t in trials if t.log_problem is not None]
    if not bad or any(t.log_problem is None and t.n_evals for t in trials):
        return
    more = f" (and {len(bad) - 1} more trials like it)" if len(bad) > 1 else ""
    raise UserError(f"{bad[0].trial.path / CSV_FILENAME}: {bad[0].log_problem}{more}; nothing "
                    "to score: pass the experiment directories that AlgoPerf's runner or "
                    "`algoperf run` wrote.")


def _check_budgets(name: str, trials: Sequence[ScoredTrial], rules: registry.RulesVersion,
                   ruleset: str, diag: dg.Diagnostics) -> None:
    for trial in trials:
        budget = rules.budget(trial.trial.workload, ruleset)
        if math.isfinite(trial.time_to_target) and trial.time_to_target > budget:
            diag.warn(dg.OVER_BUDGET, f"{name}: time-to-target {trial.time_to_target:.0f}s "
                      f"exceeds the {ruleset}-tuning budget of {budget:.0f}s under rules "
                      f"{rules.name} (counted, as AlgoPerf does)", trial.trial.path)


def _times_matrix(results: dict[str, dict[str, WorkloadResult]], names: Sequence[str],
                  columns: Sequence[str]) -> np.ndarray:
    return np.array([[results[n][w].time if w in results[n] else math.nan for w in columns]
                     for n in names], dtype=np.float64).reshape(len(names), len(columns))


def _statuses(raw: np.ndarray, ruled: np.ndarray, names: Sequence[str],
              workloads: WorkloadSet, results: dict[str, dict[str, WorkloadResult]],
              reported: Sequence[str]) -> list[dict[str, str]]:
    columns = list(workloads.columns)
    best = np.fmin.reduce(raw, axis=0) if raw.size else np.full(len(columns), math.nan)
    statuses = []
    for s, name in enumerate(names):
        row = {}
        for workload in reported:
            if workload in columns:
                w = columns.index(workload)
                scored = (ruled[s, workloads.base.index(workload)]
                          if workload in workloads.base else None)
                row[workload] = classify(raw[s, w], scored, best[w])
            else:
                result = results[name].get(workload)
                row[workload] = classify(math.nan if result is None else result.time, None,
                                         math.nan)
        statuses.append(row)
    return statuses


def score(paths: Sequence[str | os.PathLike], *, rules: str | None = None,
          ruleset: str | None = None, held_out: Sequence[str] | None = None,
          reference: str | None = None, bootstrap_replicates: int = DEFAULT_REPLICATES,
          seed: int = 0, level: float = DEFAULT_LEVEL, leaderboard: str | None = None) -> Report:
    """Scores the submissions under ``paths`` (one leaderboard) and returns the
    :class:`Report`.

    ``paths``: submission experiment directories and/or directories of submissions.
    ``rules``: a rules version of the registry (``v0.5``, ``v0.6``, ``a100``); ``ruleset``:
    ``external`` or ``self`` tuning. Either left None is the one the runs record (the value
    most submissions record), else v0.6 and external; an explicit value that differs from the
    recorded one is used, with a ``rules_mismatch`` warning. ``held_out``: variant names
    overriding the rules version's held-out sample. ``reference``: a submission name to
    compute speedups against. ``bootstrap_replicates``: 0 turns the bootstrap off.
    ``leaderboard``: a label for the report. Bad input is reported in ``Report.warnings``; a
    problem that leaves nothing to score (no logs, or no AlgoPerf logs) raises UserError.
    """
    if rules is not None:
        try:
            registry.get_rules(rules)
        except registry.UnknownNameError as e:
            raise UserError(str(e)) from None
    if ruleset is not None and ruleset not in RULESETS:
        raise UserError(f"unknown ruleset {ruleset!r}; use 'external' or 'self'.")
    diag = dg.Diagnostics()
    submissions = find_submissions(paths, diag)
    names = [s.name for s in submissions]
    if reference is not None and reference not in names:
        raise UserError(f"reference submission {reference!r} not found; submissions: "
                        f"{', '.join(names)}.")
    read = {sub.name: _read_trials(sub, diag) for sub in submissions}
    trial_results = {name: trials for name, (trials, _) in read.items()}
    _refuse_if_nothing_is_an_algoperf_log(trial_results)
    where = {sub.name: sub.experiments[0] for sub in submissions}
    ruleset = _resolve(_ruleset_words, "--ruleset", ruleset,
                       {n: r[0] for n, (_, r) in read.items()}, RULESETS, "external", where,
                       diag)
    rules = _resolve(_rules_words, "--rules", rules, {n: r[1] for n, (_, r) in read.items()},
                     list(registry.RULES), registry.DEFAULT_RULES, where, diag)
    rules_version = registry.get_rules(rules)
    results: dict[str, dict[str, WorkloadResult]] = {}
    for sub in submissions:
        trials = trial_results[sub.name]
        _check_budgets(sub.name, trials, rules_version, ruleset, diag)
        results[sub.name] = aggregate_workloads(sub.name, trials, diag)
    workload_set = choose_workloads(results, rules_version, held_out, diag)
    check_counts(results, workload_set, rules_version, ruleset, diag)

    columns = workload_set.columns
    raw = _times_matrix(results, names, columns)
    scored = score_times(raw, columns, workload_set.base, workload_set.held_out)
    boot = None
    if bootstrap_replicates > 0 and names:
        study_times = [[results[n][w].study_times if w in results[n] else [] for w in columns]
                       for n in names]
        boot = bootstrap(study_times, columns, workload_set.base, workload_set.held_out,
                         replicates=bootstrap_replicates, seed=seed, level=level)

    order = sorted(range(len(names)), key=lambda s: (-scored.scores[s], names[s]))
    ranks = 1 + (scored.scores[None, :] > scored.scores[:, None]).sum(axis=1)
    probability = None if boot is None else boot.rank_probability(ranks)
    reported = sorted({w for r in results.values() for w in r} - set(columns))
    statuses = _statuses(raw, scored.times, names, workload_set, results,
                         [*columns, *reported])
    budgets = {w: rules_version.budget(w, ruleset) for w in workload_set.base}
    rows = []
    for s in order:
        name = names[s]
        times = {w: results[name][w].time for w in results[name]}
        rows.append(SubmissionScore(
            name=name,
            experiments=submissions[s].experiments,
            score=float(scored.scores[s]),
            rank=int(ranks[s]),
            profile=scored.profile[s],
            workloads=results[name],
            scored_times={w: float(scored.times[s, k]) for k, w in enumerate(workload_set.base)},
            ratios={w: float(scored.ratios[s, k]) for k, w in enumerate(workload_set.base)},
            statuses=statuses[s],
            ci=None if boot is None else (float(boot.ci_low[s]), float(boot.ci_high[s])),
            rank_probability=None if probability is None else float(probability[s]),
            rank_distribution=(None if boot is None
                               else tuple(float(p) for p in boot.rank_distribution[s])),
            speedup=(None if reference is None else
                     speedup(times, {w: r.time for w, r in results[reference].items()},
                             budgets, reference)),
        ))
    return Report(rules=rules_version.name, ruleset=ruleset, workload_set=workload_set,
                  taus=scored.taus, submissions=tuple(rows), warnings=tuple(diag.warnings),
                  reference=reference, bootstrap_replicates=bootstrap_replicates if boot else 0,
                  seed=seed, level=level, leaderboard=leaderboard)


def score_leaderboards(paths: Sequence[str | os.PathLike], **options) -> list[Report]:
    """Scores every leaderboard ``paths`` name: one report for PATHs that are submissions or
    leaderboards (as :func:`score`), or one per leaderboard under a single PATH that holds
    several (``external_tuning/`` and ``self_tuning/``), each labelled with its path relative
    to PATH and scored under the ruleset and rules version its own runs record. ``options``
    are :func:`score`'s; with several leaderboards, ``reference`` applies to those that hold
    it (a UserError if none does)."""
    boards = find_leaderboards(paths)
    reference = options.pop("reference", None)
    if len(boards) == 1:
        return [score(boards[0][1], reference=reference, **options)]
    holding = {label: reference is not None and reference in
               {s.name for s in find_submissions(members, dg.Diagnostics())}
               for label, members in boards}
    if reference is not None and not any(holding.values()):
        raise UserError(f"reference submission {reference!r} is in none of the leaderboards "
                        f"({', '.join(holding)}).")
    return [score(members, leaderboard=label, reference=reference if holding[label] else None,
                  **options) for label, members in boards]
