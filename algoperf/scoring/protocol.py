"""Which workloads are scored, and whether each submission followed the tuning protocol.

Base workloads: the rules version fixes the workload set (plus held-out variants) and the
number of studies and of trials per study (one trial per study under self-tuning); any
shortfall is a warning, as in AlgoPerf's non-strict scoring. Dev workloads (mnist, digits,
cifar) have no official protocol: when only dev workloads are present they form the workload
set, and submissions are only warned about counts that differ from one another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from algoperf.errors import UserError
from algoperf.scoring import diagnostics as dg
from algoperf.scoring.aggregate import WorkloadResult
from algoperf.workloads import registry

Results = Mapping[str, Mapping[str, WorkloadResult]]  # submission -> workload -> result


@dataclasses.dataclass(frozen=True)
class WorkloadSet:
    """The workloads that enter the score: ``base`` divide the profile; ``held_out`` maps
    each held-out variant to its base workload."""

    base: tuple[str, ...]
    held_out: dict[str, str]
    dev: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.base, *self.held_out)


def held_out_variants(names: Sequence[str]) -> dict[str, str]:
    """Maps held-out variant names to their base workloads; rejects unknown or base names."""
    variants = {}
    for name in names:
        try:
            info = registry.get_workload(name)
        except registry.UnknownNameError as e:
            raise UserError(f"held-out workloads: {e}") from None
        if not info.is_variant:
            raise UserError(f"held-out workloads: {name!r} is a base workload, not a variant.")
        variants[name] = info.base
    return variants


def choose_workloads(results: Results, rules: registry.RulesVersion,
                     held_out: Sequence[str] | None, diag: dg.Diagnostics) -> WorkloadSet:
    """The rules' base workloads (+ held-out variants), or the dev workloads present when
    the logs hold nothing else. Workloads present but not scored get a warning."""
    variants = held_out_variants(rules.held_out_workloads if held_out is None else held_out)
    present = sorted({w for workloads in results.values() for w in workloads})
    dev = [w for w in present if registry.get_workload(w).dev]
    if present and len(dev) == len(present):
        return WorkloadSet(tuple(dev), {}, dev=True)
    chosen = WorkloadSet(tuple(rules.base_workloads), variants, dev=False)
    for workload in present:
        if workload not in chosen.columns:
            why = "a dev workload" if workload in dev else f"not scored under rules {rules.name}"
            diag.warn(dg.UNSCORED_WORKLOAD, f"{workload} is {why}; its times are reported "
                      "but do not enter the score")
    for workload in chosen.columns:
        if not any(workload in workloads for workloads in results.values()):
            diag.warn(dg.MISSING_WORKLOAD, f"no submission has logs for {workload}; it counts "
                      "as not reached for all")
    return chosen


def _trial_counts(result: WorkloadResult) -> tuple[int, ...]:
    return tuple(len(study.trials) for study in result.studies)


def check_counts(results: Results, workloads: WorkloadSet, rules: registry.RulesVersion,
                 ruleset: str, diag: dg.Diagnostics) -> None:
    """Warns about missing workloads and incomplete or inconsistent studies."""
    if workloads.dev:
        _check_dev_counts(results, workloads, diag)
        return
    trials_expected = 1 if ruleset == "self" else rules.num_trials
    for submission, by_workload in results.items():
        for workload in workloads.columns:
            result = by_workload.get(workload)
            if result is None:
                if any(workload in other for other in results.values()):
                    diag.warn(dg.MISSING_WORKLOAD, f"{submission}: no logs for {workload}; "
                              "counts as not reached")
                continue
            if len(result.studies) != rules.num_studies:
                diag.warn(dg.INCOMPLETE, f"{submission}: {workload} has {len(result.studies)} "
                          f"studies, rules {rules.name} expect {rules.num_studies}")
            for study in result.studies:
                if len(study.trials) != trials_expected:
                    diag.warn(dg.INCOMPLETE, f"{submission}: {workload} {study.study} has "
                              f"{len(study.trials)} trials, {ruleset}-tuning under rules "
                              f"{rules.name} expects {trials_expected}")


def _check_dev_counts(results: Results, workloads: WorkloadSet, diag: dg.Diagnostics) -> None:
    for workload in workloads.base:
        shapes = {}
        for submission, by_workload in results.items():
            result = by_workload.get(workload)
            if result is None:
                diag.warn(dg.MISSING_WORKLOAD, f"{submission}: no logs for {workload}; "
                          "counts as not reached")
                continue
            counts = _trial_counts(result)
            if len(set(counts)) > 1:
                diag.warn(dg.INCONSISTENT, f"{submission}: {workload} studies have different "
                          f"trial counts {list(counts)}")
            shapes[submission] = (len(counts), max(counts))
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{s}: {n} studies x {t} trials" for s, (n, t) in shapes.items())
            diag.warn(dg.INCONSISTENT, f"{workload}: submissions ran different protocols "
                      f"({listed})")
