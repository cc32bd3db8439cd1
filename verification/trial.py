"""Verifying one trial directory that has an event log (a run of this harness).

`verify_trial` reads the directory once (the event log, the files it hashes, the small JSON
files) and runs every check in `records` and `signatures` on it. It never raises for what it
finds in the directory: a check that meets content it cannot read fails with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from algoperf.hashing import file_sha256
from algoperf.logs.events import EVENTS_FILENAME
from algoperf.verification import event_checks, signatures
from algoperf.verification.context import Options, Trial
from algoperf.verification.digests import manifest
from algoperf.verification.eventlog import scan
from algoperf.verification.findings import FAIL, Check, Problem, TrialVerdict
from algoperf.verification.seal import SEAL_FILENAME


def verify_trial(root: str | os.PathLike, path: str | os.PathLike,
                 options: Options) -> TrialVerdict:
    """Every check of the trial at ``path``; names in findings are relative to ``root``."""
    root, path = Path(root), Path(path)
    rel = path.relative_to(root).as_posix()
    try:
        t = Trial(root, path, scan(path / EVENTS_FILENAME), options)
        files = manifest(path, exclude=frozenset({SEAL_FILENAME}),
                         known={EVENTS_FILENAME: t.log.sha256})
    except OSError as e:
        problem = Problem(f"{rel}/{EVENTS_FILENAME}", None, f"cannot read: {e}")
        return TrialVerdict(rel, "events", [Check("event chain", FAIL, problem.reason,
                                                  (problem,))])
    seal_check, seal = _guarded_seal(t, files)
    run = seal.predicate.get("run") if seal is not None else None
    seal_run = run if isinstance(run, dict) else None
    checks = [
        _guarded(t, "event chain", event_checks.chain),
        _guarded(t, "run records", event_checks.run_records),
        _guarded(t, "trial identity", event_checks.identity),
        _guarded(t, "eval csv", event_checks.eval_csv),
        _guarded(t, "timing", event_checks.timing),
        _guarded(t, "rules", event_checks.rules),
        _guarded(t, "hardware", event_checks.hardware),
        seal_check,
        _guarded(t, "witness", signatures.witness),
        _guarded(t, "hardware samples", signatures.hardware_samples),
        _guarded(t, "environment", lambda t: event_checks.environment(t, seal_run)),
        _guarded(t, "submission", lambda t: event_checks.submission(t, seal_run)),
        _guarded(t, "dataset", lambda t: event_checks.dataset(t, seal_run)),
        _guarded(t, "measurement", event_checks.measurement),
    ]
    subjects = {t.name(f): digest for f, digest in files.items()}
    if (path / SEAL_FILENAME).exists():
        subjects[t.name(SEAL_FILENAME)] = file_sha256(path / SEAL_FILENAME)
    size = sum((path / f).stat().st_size for f in files)
    return TrialVerdict(rel, "events", checks, subjects, size, _facts(t))


def _guarded(t: Trial, name: str, fn: Callable[[Trial], Check]) -> Check:
    try:
        return fn(t)
    except Exception as e:  # noqa: BLE001 - content no check foresaw fails, never crashes
        reason = f"content the verifier cannot read: {type(e).__name__}: {e}"
        return Check(name, FAIL, reason, (Problem(t.events_name, None, reason),))


def _guarded_seal(t: Trial, files: dict[str, str]):
    try:
        return signatures.seal(t, files)
    except Exception as e:  # noqa: BLE001 - as in _guarded
        reason = f"content the verifier cannot read: {type(e).__name__}: {e}"
        return Check("seal", FAIL, reason, (Problem(t.name(SEAL_FILENAME), None, reason),)), None


def _facts(t: Trial) -> dict[str, Any]:
    """What the tree-level checks and re-execution need from this trial."""
    data = t.start_data
    keys = ("workload", "framework", "study", "trial", "seed", "master_seed",
            "submission_sha256", "rules_version", "ruleset", "dataset_manifest_root",
            "submission", "hyperparameters")
    facts = {key: data.get(key) for key in keys}
    facts["events_line"] = t.run_start[0] if t.run_start else None
    return facts
