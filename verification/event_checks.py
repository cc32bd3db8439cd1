"""Checks of what a trial's events say: the run's shape, identity, rules, hardware and inputs.

Each function takes a `Trial` and returns one `Check`. They read only the event log and the
small JSON files beside it; signatures and the witness are in `signatures`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from algoperf.errors import UserError
from algoperf.hardware import compare, load_profile
from algoperf.hardware.fingerprint import Fingerprint
from algoperf.logs import events as ev
from algoperf.logs import quality
from algoperf.logs.trial_files import HPARAMS_FILENAME, flags_filename, meta_data_filename
from algoperf.logs.values import parse_float
from algoperf.scoring.discover import TRIAL_DIR, WORKLOAD_DIR
from algoperf.verification.context import Trial
from algoperf.verification.findings import NOTE, PASS, SKIP, UNCERTIFIABLE, Check, Problem, check
from algoperf.verification.tables import compare_eval_csv
from algoperf.verification.timing import EvalPoint, check_timing
from algoperf.workloads import registry

KNOWN_TYPES = frozenset({ev.RUN_START, ev.TRIAL_START, ev.EVAL, ev.CHECKPOINT,
                         ev.CHECKPOINT_DISABLED, ev.RESUME, ev.ERROR, ev.RUN_END,
                         ev.LOG_REPAIR, ev.HARDWARE_SAMPLE})
START_FIELDS = {"workload": str, "framework": str, "rules_version": str, "ruleset": str,
                "study": int, "trial": int, "seed": int, "submission_sha256": str,
                "budget_sec": (int, float), "eval_period_sec": (int, float)}
FORCED_FINAL_EVAL = frozenset({"max_steps", "training_complete"})


def chain(t: Trial) -> Check:
    problems = [Problem(t.events_name, e.line, e.reason) for e in t.log.errors]
    return check("event chain", problems, f"{len(t.log.line_hashes)} lines, hash chain intact")


def run_records(t: Trial) -> Check:
    """The log opens with run_start, has only known event types, well-formed starts, and a
    run_end that agrees with the evals."""
    problems = []
    records = t.log.records
    if not records or records[0][1]["type"] != ev.RUN_START:
        first = records[0][1]["type"] if records else "nothing"
        problems.append(Problem(t.events_name, records[0][0] if records else None,
                                f"the log starts with {first}, not run_start"))
    for line, record in records:
        if record["type"] not in KNOWN_TYPES:
            problems.append(Problem(t.events_name, line, f"unknown event type "
                                    f"{record['type']!r}"))
    for line, record in t.log.records_of(ev.RUN_START):
        for field, kind in START_FIELDS.items():
            value = record["data"].get(field)
            if not isinstance(value, kind) or isinstance(value, bool):
                problems.append(Problem(t.events_name, line, f"run_start has no valid {field}"))
    problems += _end_problems(t)
    if problems:
        return check("run records", problems, "")
    if t.run_end is None:
        return Check("run records", UNCERTIFIABLE, "the run did not finish: no run_end event "
                     "(killed, or still running)")
    end = t.run_end[1]["data"]
    return Check("run records", PASS, f"{len(t.table.rows)} evals, ended "
                 f"{end.get('status')} ({end.get('reason')})")


def _end_problems(t: Trial) -> list[Problem]:
    if t.run_end is None:
        return []
    line, record = t.run_end
    end = record["data"]
    problems = []
    rows = t.table.rows
    if end.get("num_evals") != len(rows):
        problems.append(Problem(t.events_name, line, f"run_end counts {end.get('num_evals')} "
                                f"evals, the log has {len(rows)}"))
    step = end.get("global_step")
    if rows and (not isinstance(step, int) or step < rows[-1].step):
        problems.append(Problem(t.events_name, line, f"run_end global_step {step!r} is before "
                                f"the last eval's {rows[-1].step}"))
    if rows:
        final, last = _float(end.get("accumulated_submission_time")), _float(
            rows[-1].metrics.get("score"))
        if not final >= last:
            problems.append(Problem(t.events_name, line, f"run_end submission time {final!r} "
                                    f"is less than the last eval's {last!r}"))
    return problems


def _float(value: Any) -> float:
    try:
        return parse_float(value)
    except (TypeError, ValueError):
        return math.nan


def identity(t: Trial) -> Check:
    """The trial is what its directory says it is, and its files agree with its events."""
    problems = []
    study_dir, workload_dir, trial_dir = t.path.parent.parent.name, t.path.parent.name, t.path.name
    match, trial_match = WORKLOAD_DIR.match(workload_dir), TRIAL_DIR.match(trial_dir)
    for line, record in t.starts:
        data = record["data"]
        said = {"study": f"study_{data.get('study')}", "trial": f"trial_{data.get('trial')}",
                "workload": data.get("workload"), "framework": data.get("framework")}
        found = {"study": study_dir, "trial": trial_dir,
                 "workload": match.group(1) if match else None,
                 "framework": match.group(2) if match else None}
        if record["type"] == ev.RESUME:  # a resume repeats no identity; it must not differ
            said = {k: v for k, v in said.items() if data.get(k) is not None}
        for key, value in said.items():
            if value != found[key] and not (key == "trial" and trial_match is None):
                problems.append(Problem(t.events_name, line, f"{record['type']} says {key} "
                                        f"{value}, but the directory is {found[key]}: trial "
                                        "directories were moved or swapped"))
    problems += _file_problems(t)
    return check("trial identity", problems, "directory, events, hparams and flags agree")


def _file_problems(t: Trial) -> list[Problem]:
    data, problems = t.start_data, []
    if not data:
        return problems
    hparams, bad = t.read_json(HPARAMS_FILENAME)
    if bad:
        problems.append(Problem(t.name(HPARAMS_FILENAME), None, bad))
    elif data.get("ruleset") == "external":
        if hparams is None:
            problems.append(Problem(t.name(HPARAMS_FILENAME), None, "missing for an "
                                    "external-tuning trial"))
        elif hparams != data.get("hyperparameters"):
            problems.append(Problem(t.name(HPARAMS_FILENAME), None, "differs from the "
                                    "hyperparameters in run_start"))
    for line, record in t.starts:
        count = 0 if record["type"] == ev.RUN_START else record["data"].get("preemption_count")
        if not isinstance(count, int) or count < 0:
            continue
        for file, key in ((flags_filename(count), "rng_seed"),
                          (meta_data_filename(count), "rng_seed")):
            content, bad = t.read_json(file)
            if bad:
                problems.append(Problem(t.name(file), None, bad))
            elif content is None:
                problems.append(Problem(t.name(file), None, f"missing (the process of "
                                        f"{t.events_name} line {line} writes it)"))
            elif not isinstance(content, dict) or content.get(key) != data.get("seed"):
                problems.append(Problem(t.name(file), None, f"{key} differs from the seed "
                                        f"{data.get('seed')} in run_start"))
    return problems


def eval_csv(t: Trial) -> Check:
    name = "eval_measurements.csv"
    try:
        actual = (t.path / name).read_bytes()
    except FileNotFoundError:
        actual = None
    problems = compare_eval_csv(t.table, actual, t.name(name), t.events_name)
    return check("eval csv", problems, f"{name} is exactly what the {len(t.table.rows)} "
                 "eval events say")


def timing(t: Trial) -> Check:
    data = t.start_data
    if not data:
        return Check("timing", SKIP, "no run_start")
    fresh_segments = {k for k, (_, r) in enumerate(t.starts) if r["type"] == ev.RUN_START}
    points = [EvalPoint.from_metrics(t.events_name, row.line, row.segment, row.step,
                                     row.metrics, row.segment in fresh_segments)
              for row in t.table.rows]
    end = t.run_end[1]["data"] if t.run_end else {}
    problems = check_timing(points, _float(data.get("eval_period_sec")),
                            _float(data.get("budget_sec")),
                            str(end.get("reason")) in FORCED_FINAL_EVAL)
    return check("timing", problems, f"clocks consistent over {len(points)} evals; evals "
                 f"{data.get('eval_period_sec')}s apart or more; all within the "
                 f"{data.get('budget_sec')}s budget")


def rules(t: Trial) -> Check:
    """The budget, eval period and targets the run used are the registry's for its rules."""
    data = t.start_data
    if not data:
        return Check("rules", SKIP, "no run_start")
    line = t.run_start[0]
    try:
        info = registry.get_workload(str(data.get("workload")))
        version = registry.get_rules(str(data.get("rules_version")))
    except UserError as e:
        return check("rules", [Problem(t.events_name, line, str(e))], "")
    ruleset = data.get("ruleset")
    if ruleset not in ("external", "self"):
        return check("rules", [Problem(t.events_name, line, f"unknown ruleset {ruleset!r}")],
                     "")
    expected = {"budget_sec": version.budget(info.name, ruleset),
                "eval_period_sec": info.eval_period_time_sec,
                "validation_target": info.validation_target_value,
                "test_target": info.test_target_value,
                "target_metric": info.target_metric_name}
    problems = [Problem(t.events_name, line, f"run_start {key} is {data.get(key)!r}, rules "
                        f"{version.name} say {value!r}")
                for key, value in expected.items() if data.get(key) != value]
    problems += _goal_problems(t, info)
    if problems:
        return check("rules", problems, "")
    if data.get("max_global_steps") is not None:
        return Check("rules", UNCERTIFIABLE, f"run with max_global_steps "
                     f"{data['max_global_steps']}: not a benchmark run")
    return Check("rules", PASS, f"budget, eval period and targets of rules {version.name} "
                 f"({ruleset} tuning); goal flags follow the targets")


def _goal_problems(t: Trial, info: registry.WorkloadInfo) -> list[Problem]:
    """Each eval's goal flags are the sticky OR of the workload's target test so far."""
    problems = []
    reached = {"validation": False, "test": False}
    targets = {"validation": info.validation_target_value, "test": info.test_target_value}
    for line, record in t.log.records_of(ev.RUN_START, ev.RESUME, ev.EVAL):
        if record["type"] == ev.RUN_START:
            reached = {"validation": False, "test": False}
            continue
        if record["type"] == ev.RESUME:
            continue  # restored flags come from the checkpoint of an earlier eval
        metrics = record["data"].get("metrics") or {}
        for split, target in targets.items():
            value = _float(metrics.get(f"{split}/{info.target_metric_name}"))
            reached[split] |= target is not None and bool(info.reached(value, target, strict=True))
            claimed = record["data"].get(f"{split}_goal_reached")
            if claimed is not None and claimed != reached[split]:
                problems.append(Problem(t.events_name, line, f"{split}_goal_reached is "
                                        f"{claimed} but the metrics say {reached[split]}"))
    return problems


def measurement(t: Trial) -> Check:
    """How busy the host was while the trial trained (run_end's measurement_quality, judged by
    `algoperf.logs.quality`): a contended trial is a finding (NOTE), never a failure."""
    if t.run_end is None:
        return Check("measurement", SKIP, f"{quality.NOT_RECORDED}: no run_end")
    line, record = t.run_end
    measured = record["data"].get(quality.RECORD_KEY)
    found = quality.assess(measured)
    if not found.recorded:
        return Check("measurement", SKIP, quality.NOT_RECORDED)
    if found.contended:
        reason = (f"contended: {'; '.join(found.reasons)}; the time to target measures the "
                  "host as much as the submission")
        return Check("measurement", NOTE, reason, (Problem(t.events_name, line, reason),))
    return Check("measurement", PASS if found.contended is False else SKIP,
                 quality.describe(measured))


def hardware(t: Trial) -> Check:
    """Each process's fingerprint: its digest is right, and it matches the reference."""
    if not t.starts:
        return Check("hardware", SKIP, "no run_start")
    problems, uncertifiable = [], []
    for line, record in t.starts:
        data = record["data"]
        raw = data.get("fingerprint")
        if raw is None:
            uncertifiable.append(f"no hardware fingerprint ({record['type']} line {line})")
            continue
        try:
            fingerprint, digest, key = _fingerprint(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            problems.append(Problem(t.events_name, line, f"unreadable fingerprint ({e})"))
            continue
        if data.get("fingerprint_digest") != digest or raw.get("digest") != digest:
            problems.append(Problem(t.events_name, line, "the fingerprint digest does not "
                                    "match the fingerprint's fields"))
        recorded = data.get("reference")
        profile_name = t.options.reference or recorded
        if profile_name is None:
            uncertifiable.append("no reference profile: run with --reference, or verify with "
                                 "--reference")
            continue
        try:
            differences = _mismatches(fingerprint, key, profile_name)
        except UserError as e:
            problems.append(Problem(t.events_name, line, f"reference profile: {e}"))
            continue
        if differences:
            if data.get("certifiable") and profile_name == recorded:
                problems.append(Problem(t.events_name, line, f"claims to match {recorded} but "
                                        f"differs in {differences[0].field}"))
            else:
                uncertifiable.append(f"differs from reference {profile_name} in "
                                     f"{len(differences)} field(s), e.g. "
                                     f"{differences[0].field}")
    if problems:
        return check("hardware", problems, "")
    if uncertifiable:
        return Check("hardware", UNCERTIFIABLE, uncertifiable[0])
    return Check("hardware", PASS, f"matches reference {t.options.reference or recorded}")


def _fingerprint(raw: dict[str, Any]) -> tuple[Fingerprint, str, str]:
    """A recorded fingerprint, its recomputed digest and a key naming it exactly (the same
    machine's fingerprint, recorded by every trial of a leaderboard, is read once)."""
    key = json.dumps(raw, sort_keys=True)
    if key not in _FINGERPRINTS:
        fingerprint = Fingerprint.from_json(raw)
        _FINGERPRINTS[key] = (fingerprint, fingerprint.digest(), key)
    return _FINGERPRINTS[key]


def _mismatches(fingerprint: Fingerprint, key: str, profile_name: str) -> list:
    """The enforced fields where the fingerprint differs from the profile."""
    if (key, profile_name) not in _COMPARED:
        _COMPARED[key, profile_name] = [d for d in compare(fingerprint,
                                                           load_profile(profile_name))
                                        if d.enforced]
    return _COMPARED[key, profile_name]


_FINGERPRINTS: dict[str, tuple[Fingerprint, str, str]] = {}
_COMPARED: dict[tuple[str, str], list] = {}


def environment(t: Trial, seal_run: dict[str, Any] | None) -> Check:
    """The image and lockfile: recorded, known, and the ones the host says it ran."""
    data = t.start_data
    if not data:
        return Check("environment", SKIP, "no run_start")
    line = t.run_start[0]
    image, lock = data.get("image_digest"), data.get("lockfile_sha256")
    problems = []
    known = t.options.lockfile_sha256s
    if lock is not None and known is not None and lock not in known:
        problems.append(Problem(t.events_name, line, f"lockfile sha256 {lock[:16]}... matches "
                                "no lockfile in containers/"))
    if seal_run is not None:
        for key, value in (("image_id", image), ("lockfile_sha256", lock)):
            if key in seal_run and seal_run[key] != value:
                problems.append(Problem(t.events_name, line, f"{key} {value!r} differs from "
                                        f"the {seal_run[key]!r} the host sealed"))
    if problems:
        return check("environment", problems, "")
    if image is None or lock is None:
        return Check("environment", UNCERTIFIABLE, "not run in the pinned image (no image id "
                     "or lockfile hash): use algoperf docker run")
    return Check("environment", PASS, f"image {image[:19]}, lockfile {lock[:12]}")


def submission(t: Trial, seal_run: dict[str, Any] | None) -> Check:
    data = t.start_data
    if not data:
        return Check("submission", SKIP, "no run_start")
    digests = {r["data"].get("submission_sha256") for _, r in t.log.records_of(ev.RUN_START)}
    problems = []
    recorded = data.get("submission_sha256")
    if len(digests) > 1:
        problems.append(Problem(t.events_name, None, "the submission source changed between "
                                "restarts"))
    expected = t.options.submission_sha256
    if expected is not None and recorded != expected:
        problems.append(Problem(t.events_name, t.run_start[0], f"submission sha256 "
                                f"{str(recorded)[:16]}... is not the given submission's "
                                f"{expected[:16]}..."))
    if seal_run is not None and seal_run.get("submission_sha256") not in (None, recorded):
        problems.append(Problem(t.events_name, t.run_start[0], "submission sha256 differs "
                                "from the one the host sealed"))
    how = "matches --submission" if expected else "recorded"
    return check("submission", problems, f"source {str(recorded)[:16]}... {how}")


def dataset(t: Trial, seal_run: dict[str, Any] | None) -> Check:
    """The prepared dataset's root hash: recorded, the one the host sealed, and (with
    Options.data_dir) the one of the auditor's own prepared copy."""
    data = t.start_data
    if not data:
        return Check("dataset", SKIP, "no run_start")
    root = data.get("dataset_manifest_root")
    line = t.run_start[0]
    if seal_run is not None and seal_run.get("dataset_manifest_root") not in (None, root):
        return check("dataset", [Problem(t.events_name, line, "dataset manifest root differs "
                                         "from the one the host sealed")], "")
    try:
        info = registry.get_workload(str(data.get("workload")))
    except UserError:
        info = None
    if root is None:
        if info is not None and info.dev:
            return Check("dataset", PASS, "dev workload: its data ships with the package")
        return Check("dataset", UNCERTIFIABLE, "no dataset manifest root recorded")
    if t.options.data_dir is not None and info is not None:
        from algoperf.datasets import recorded_root

        mine = recorded_root(t.options.data_dir, info.dataset)
        if mine != root:
            return check("dataset", [Problem(t.events_name, line, f"ran on {info.dataset} with "
                                             f"root {root[:16]}..., the copy in "
                                             f"{t.options.data_dir} has "
                                             f"{str(mine)[:16]}...")], "")
        return Check("dataset", PASS, f"manifest root {root[:16]}... matches the prepared copy")
    return Check("dataset", PASS, f"manifest root {root[:16]}...")
