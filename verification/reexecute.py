"""Re-execution: re-run the first steps of a logged trial and compare what both runs logged.

A determinism audit on the CPU. From the trial's ``run_start`` (master seed, study, trial,
hyperparameters, rules) and its submission (whose source hash must match), the runner trains
the same trial again for ``steps`` steps (``max_global_steps``) in a scratch directory. Two
things are compared, within ``rtol``/``atol``:

- every scalar the submission logged itself (``workload.metrics_logger``, e.g. AlgoPerf's
  baselines log ``loss`` and ``grad_norm``) at a step before ``steps``: these rows of
  ``measurements.csv`` are per-step training losses at the submission's cadence;
- every eval metric (``train/``, ``validation/``, ``test/``) of an eval both runs made at the
  same step. Evals follow the wall clock, so only the first (always after step 1, by the
  rules) is certain to line up; it checks model, data order and eval together.

The runner needs no change for this: the per-step losses are those the submission chooses to
log; a submission that logs nothing is audited on its first eval alone (the check says so).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.logs import events as ev
from algoperf.logs.measurements import MEASUREMENTS_FILENAME
from algoperf.scoring.discover import Tree
from algoperf.verification.eventlog import scan
from algoperf.verification.findings import (
    FAIL,
    PASS,
    SKIP,
    UNCERTIFIABLE,
    Check,
    Problem,
    TrialVerdict,
)

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-6
_NOT_COMPARED = frozenset({"global_step", "preemption_count", "score", "total_duration",
                           "accumulated_submission_time", "accumulated_eval_time",
                           "accumulated_logging_time"})


@dataclasses.dataclass(frozen=True)
class Settings:
    steps: int
    submission: Path | None = None  # default: the path in run_start
    data_dir: Path | None = None  # default: flags_0.json's data_dir
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL


def reexecution(settings: Settings):
    """The re-execution step for `verify.verify`: one trial per submission, workload and
    framework (the first with an event log)."""

    def run(tree: Tree, verdicts: list[TrialVerdict]) -> list[Check]:
        chosen: dict[tuple, tuple[Path, TrialVerdict]] = {}
        for trial, verdict in zip(tree.trials, verdicts, strict=True):
            if verdict.kind == "events":
                key = (trial.parents[2], verdict.facts.get("workload"),
                       verdict.facts.get("framework"))
                chosen.setdefault(key, (trial, verdict))
        if not chosen:
            return [Check("re-execution", SKIP, "no trial with an event log to re-execute")]
        return [reexecute_trial(trial, verdict, settings) for trial, verdict in chosen.values()]

    return run


def reexecute_trial(trial: Path, verdict: TrialVerdict, settings: Settings) -> Check:
    """Re-runs the first ``settings.steps`` steps of ``trial`` and compares the two runs."""
    name = f"re-execution {verdict.path}"
    facts = verdict.facts
    try:
        submission = _submission(facts, settings)
        with tempfile.TemporaryDirectory(prefix="algoperf-reexecute-") as scratch:
            rerun_dir = _rerun(trial, facts, submission, settings, Path(scratch))
            problems, compared = _compare(trial, rerun_dir, verdict.path, settings)
    except UserError as e:
        return Check(name, UNCERTIFIABLE, f"could not re-execute: {e}")
    if problems:
        return Check(name, FAIL, f"{len(problems)} of {compared} values differ beyond "
                     f"rtol {settings.rtol:g}, atol {settings.atol:g}", tuple(problems[:50]),
                     max(0, len(problems) - 50))
    if not compared:
        return Check(name, SKIP, f"nothing logged at the same steps in the first "
                     f"{settings.steps} steps to compare")
    return Check(name, PASS, f"{compared} logged values of the first {settings.steps} steps "
                 f"reproduced within rtol {settings.rtol:g}, atol {settings.atol:g}")


def _submission(facts: dict[str, Any], settings: Settings) -> Path:
    from algoperf.submission import resolve_path, source_digest

    given = settings.submission or (Path(facts["submission"]) if facts.get("submission")
                                    else None)
    if given is None:
        raise UserError("run_start names no submission; pass --submission")
    path = resolve_path(given, str(facts.get("framework")))
    if not path.is_file():
        raise UserError(f"no submission at {path}; pass --submission")
    if source_digest(path) != facts.get("submission_sha256"):
        raise UserError(f"the submission at {path} is not the one that ran (source sha256 "
                        "differs); pass the submission that ran with --submission")
    return path


def _rerun(trial: Path, facts: dict[str, Any], submission: Path, settings: Settings,
           scratch: Path) -> Path:
    """Trains the trial again for ``settings.steps`` steps; returns the new trial directory."""
    from algoperf import runner, tuning
    from algoperf.logs import trial_files

    study, number = facts.get("study"), facts.get("trial")
    master = facts.get("master_seed")
    if not all(isinstance(v, int) for v in (study, number, master)):
        raise UserError("run_start lacks the study, trial or master seed to re-derive the "
                        "trial's seed")
    seed = tuning.derive_seed(master, "study", study, "workload", facts["workload"], "trial",
                              number)
    if seed != facts.get("seed"):
        raise UserError(f"the trial's seed {facts.get('seed')} is not the one its master seed "
                        f"derives ({seed})")
    ruleset = facts.get("ruleset")
    flags = json.loads((trial / "flags_0.json").read_text()) if (
        trial / "flags_0.json").is_file() else {}
    data_dir = settings.data_dir or Path(flags.get("data_dir") or "~/data").expanduser()
    config = runner.RunConfig(
        submission_path=submission, workload=facts["workload"], framework=facts["framework"],
        experiment_dir=scratch, experiment_name="reexecute", data_dir=data_dir,
        ruleset=ruleset, rules=facts.get("rules_version") or "v0.6", num_studies=study + 1,
        study=study, seed=master, max_global_steps=settings.steps, resume=True,
        save_checkpoints=False)
    trial_dir = runner.workload_dir(config, study) / f"trial_{number}"
    trial_dir.mkdir(parents=True)
    if ruleset == "external":
        hyperparameters = facts.get("hyperparameters")
        if not isinstance(hyperparameters, dict):
            raise UserError("run_start has no hyperparameters to re-run with")
        trial_files.write_hparams(trial_dir, hyperparameters)
        space = scratch / "search_space.json"
        space.write_text(json.dumps([hyperparameters] * number))
        config = dataclasses.replace(config, tuning_search_space=space,
                                     num_tuning_trials=number, hparam_start_index=number - 1,
                                     hparam_end_index=number)
    results = runner.run(config)
    if not results or results[0].status != "completed":
        error = results[0].error if results else "no trial ran"
        raise UserError(f"the re-executed trial failed: {error}")
    return trial_dir


def _submission_rows(path: Path, below: int) -> dict[tuple[int, str, int], tuple[float, int]]:
    """(step, column, occurrence) -> (value, line) of the scalars a submission logged itself
    (rows without eval clocks) at steps below ``below``."""
    found: dict[tuple[int, str, int], tuple[float, int]] = {}
    seen: collections.Counter = collections.Counter()
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                if row.get("accumulated_eval_time") or row.get("score"):
                    continue
                step = _int(row.get("global_step"))
                if step is None or step >= below:
                    continue
                for column, cell in row.items():
                    value = _float(cell)
                    if column in _NOT_COMPARED or value is None:
                        continue
                    k = seen[(step, column)]
                    seen[(step, column)] += 1
                    found[(step, column, k)] = (value, reader.line_num)
    except FileNotFoundError:
        pass
    return found


def _eval_metrics(trial_dir: Path, up_to: int) -> dict[int, tuple[dict[str, Any], int]]:
    """global_step -> (metrics, line) of the first eval at each step up to ``up_to``."""
    found: dict[int, tuple[dict[str, Any], int]] = {}
    for line, record in scan(trial_dir / ev.EVENTS_FILENAME).records_of(ev.EVAL):
        step = record["data"].get("global_step")
        if isinstance(step, int) and step <= up_to and step not in found:
            found[step] = (record["data"].get("metrics") or {}, line)
    return found


def _compare(original: Path, rerun: Path, rel: str,
             settings: Settings) -> tuple[list[Problem], int]:
    problems, compared = [], 0
    logged = _submission_rows(original / MEASUREMENTS_FILENAME, settings.steps)
    again = _submission_rows(rerun / MEASUREMENTS_FILENAME, settings.steps)
    for key, (value, line) in sorted(logged.items()):
        if key not in again:
            continue
        compared += 1
        if not _close(value, again[key][0], settings):
            step, column, _ = key
            problems.append(Problem(f"{rel}/{MEASUREMENTS_FILENAME}", line, f"{column} at step "
                                    f"{step}: logged {value!r}, re-executed {again[key][0]!r}"))
    first, second = _eval_metrics(original, settings.steps), _eval_metrics(rerun, settings.steps)
    for step in sorted(set(first) & set(second)):
        (metrics, line), (redone, _) = first[step], second[step]
        for column, value in metrics.items():
            a, b = _float(value), _float(redone.get(column))
            if column in _NOT_COMPARED or a is None or b is None:
                continue
            compared += 1
            if not _close(a, b, settings):
                problems.append(Problem(f"{rel}/{ev.EVENTS_FILENAME}", line, f"{column} of "
                                        f"the eval at step {step}: logged {a!r}, re-executed "
                                        f"{b!r}"))
    return problems, compared


def _close(a: float, b: float, s: Settings) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=s.rtol, abs_tol=s.atol)


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number.is_integer() else None
