"""``verify()``: every check on every trial under a PATH, checks across trials, recomputed
scores against claims, and the verdict.

Trials are independent, so they are verified in worker processes when there are many (or
many bytes); each worker reads its trial's files once. Checks across trials come after:
seeds must differ between trials (as MLPerf's seed checker demands), and a submission's
trials must share one source hash and one set of rules.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from algoperf.logs.events import EVENTS_FILENAME
from algoperf.scoring.discover import Tree, find_trials
from algoperf.verification.context import Options
from algoperf.verification.findings import (
    EXIT_CODES,
    SKIP,
    Check,
    Problem,
    TrialVerdict,
    check,
    verdict_of,
)
from algoperf.verification.legacy import verify_legacy_trial
from algoperf.verification.scores import Claims, Recomputed, compare_claims, recompute
from algoperf.verification.trial import verify_trial
from algoperf.workloads import registry

PARALLEL_MIN_TRIALS = 16
PARALLEL_MIN_BYTES = 64 << 20


@dataclasses.dataclass
class Verification:
    """The outcome of `verify`: per-trial verdicts, tree checks, scores and the verdict."""

    tree: Tree
    trials: list[TrialVerdict]
    checks: list[Check]  # across trials, scores, claims, re-execution
    recomputed: Recomputed | None
    seconds: float
    options: Options

    @property
    def legacy(self) -> bool:
        return bool(self.trials) and all(t.kind == "legacy" for t in self.trials)

    @property
    def verdict(self) -> str:
        statuses = [c.status for c in self.checks] + [t.status for t in self.trials]
        return verdict_of(statuses, self.legacy)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def bytes_read(self) -> int:
        return sum(t.size for t in self.trials)

    def subjects(self) -> dict[str, str]:
        return {name: digest for t in self.trials for name, digest in t.files.items()}


def _one(args: tuple[str, str, Options, str | None]) -> TrialVerdict:
    root, path, options, rules = args
    if (Path(path) / EVENTS_FILENAME).exists():
        return verify_trial(root, path, options)
    return verify_legacy_trial(root, path, rules or registry.DEFAULT_RULES)


def verify_trials(tree: Tree, options: Options, rules: str | None = None,
                  jobs: int | None = None) -> list[TrialVerdict]:
    """Every trial's verdict, in the tree's order; in ``jobs`` processes when worth it."""
    work = [(str(tree.root), str(t), options, rules) for t in tree.trials]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and (len(work) >= PARALLEL_MIN_TRIALS or _size(tree) >= PARALLEL_MIN_BYTES):
        # spawn, not fork: the caller may hold threads (a witness, JAX) that fork would copy
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            return list(pool.map(_one, work, chunksize=max(1, len(work) // (jobs * 8))))
    return [_one(w) for w in work]


def _size(tree: Tree) -> int:
    total = 0
    for trial in tree.trials:
        with os.scandir(trial) as entries:
            total += sum(e.stat().st_size for e in entries if e.is_file())
    return total


def across_trials(tree: Tree, verdicts: Sequence[TrialVerdict]) -> list[Check]:
    """Seeds are unique; each submission has one source hash and one rules/ruleset."""
    seeds: dict[tuple[str, Any], list[str]] = collections.defaultdict(list)
    sources: dict[str, dict[Any, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    protocols: dict[str, dict[Any, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    for trial, verdict in zip(tree.trials, verdicts, strict=True):
        rel, facts = verdict.path, verdict.facts
        submission = trial.parents[2].name
        if facts.get("seed") is not None:
            seeds[(submission, facts["seed"])].append(rel)
        if facts.get("submission_sha256"):
            sources[submission][facts["submission_sha256"]].append(rel)
        if facts.get("ruleset") or facts.get("rules_version"):
            protocols[submission][(facts.get("rules_version"), facts.get("ruleset"))].append(rel)
    duplicate = [Problem(paths[1], None, f"seed {seed} is also the seed of {paths[0]}: "
                         "seeds must differ between trials")
                 for (_, seed), paths in seeds.items() if len(paths) > 1]
    mixed = [Problem(next(iter(found.values()))[0], None, f"{sub}: trials ran "
                     f"{len(found)} different submission sources")
             for sub, found in sources.items() if len(found) > 1]
    mixed += _dataset_problems(verdicts)
    mixed += [Problem(next(iter(found.values()))[0], None, f"{sub}: trials ran under "
                      f"{len(found)} different (rules, ruleset): {sorted(map(str, found))}")
              for sub, found in protocols.items() if len(found) > 1]
    return [check("seeds", duplicate, f"{sum(map(len, seeds.values()))} trial seeds, all "
                  "distinct"),
            check("consistency", mixed, "each submission ran one source under one set of "
                  "rules")]


def _dataset_problems(verdicts: Sequence[TrialVerdict]) -> list[Problem]:
    """Every trial of one workload ran on the same prepared data (one manifest root)."""
    roots: dict[Any, dict[str, str]] = collections.defaultdict(dict)
    for v in verdicts:
        root = v.facts.get("dataset_manifest_root")
        if root:
            roots[v.facts.get("workload")].setdefault(root, v.path)
    return [Problem(sorted(found.values())[1], None, f"{workload}: trials ran on "
                    f"{len(found)} different datasets (manifest roots)")
            for workload, found in roots.items() if len(found) > 1]


def verify(path: str | os.PathLike, options: Options | None = None, *,
           rules: str | None = None, claims: Claims | None = None,
           jobs: int | None = None,
           reexecute: Callable[[Tree, list[TrialVerdict]], list[Check]] | None = None,
           ) -> Verification:
    """Verifies the trials under ``path``. ``rules``: the rules version for logs that do not
    record one (AlgoPerf's); ``claims``: numbers to compare with the recomputed ones;
    ``reexecute``: a re-execution step (see `reexecute.reexecution`) run after the checks."""
    start = time.perf_counter()
    options = options if options is not None else Options()
    tree = find_trials(path)
    verdicts = verify_trials(tree, options, rules, jobs)
    checks = across_trials(tree, verdicts)
    facts = {str(trial): v.facts for trial, v in zip(tree.trials, verdicts, strict=True)}
    recomputed = recompute(tree, facts, rules)
    if claims is not None and not recomputed.leaderboards:
        checks.append(Check("claims", SKIP, "claims are compared for a submission or a "
                            "leaderboard; this PATH holds single trials"))
    elif claims is not None:
        checks.append(compare_claims(claims, recomputed))
    if reexecute is not None:
        checks += reexecute(tree, verdicts)
    if not checks:
        checks.append(Check("tree", SKIP, "nothing to check across trials"))
    return Verification(tree, verdicts, checks, recomputed, time.perf_counter() - start, options)

