"""The small grid the sweep tests run (digits, 2 studies x 2 trials, both rulesets) and the
checks every executor's result must pass. Imported by test_sweep*.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from algoperf.logs import events as ev
from algoperf.logs import trial_files
from algoperf.scoring import diagnostics as dg
from algoperf.scoring import score
from algoperf.scoring.discover import find_submissions
from algoperf.sweep import Job, Plan, load_plan
from algoperf.sweep.execute import job_statuses

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw" / "submission_pytorch.py"
NADAMW_SELF = ROOT / "submissions" / "nadamw_self_tuning" / "submission_pytorch.py"
MAX_STEPS = 3000  # ~4 s of training for the slow trial; the others stop at the target
SLOW_LR = 1e-5  # never reaches the digits target: such a trial runs all MAX_STEPS steps
# The Halton draw of seed 29 gives study 0 trial 1 the slow learning rate and the other three
# trials the fast one (asserted below and by the grid's score of 1.0).
GRID_SEED = 29
SEARCH_SPACE = {
    "learning_rate": {"feasible_points": [0.003, SLOW_LR]},
    "one_minus_beta1": {"feasible_points": [0.05]},
    "beta2": {"feasible_points": [0.999]},
    "warmup_factor": {"feasible_points": [0.05]},
    "weight_decay": {"feasible_points": [0.01]},
    "label_smoothing": {"feasible_points": [0.1]},
    "dropout_rate": {"feasible_points": [0.0]},
}


def job_env() -> dict[str, str]:
    """Two jobs share two cores: one thread each keeps them from fighting over both."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def algoperf(*args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=timeout, env=job_env())
    if check and done.returncode != 0:
        raise AssertionError(f"algoperf {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def popen_algoperf(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "algoperf", *args], env=job_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def plan_grid(tmp_path: Path, name: str, ruleset: str) -> Plan:
    """Plans the test grid through the CLI into ``tmp_path/name``."""
    out = tmp_path / name
    args = ["sweep", "plan", "--workloads", "digits", "--studies", "2", "--rules", "v0.6",
            "--ruleset", ruleset, "--max-global-steps", str(MAX_STEPS), "--seed", str(GRID_SEED),
            "--out", str(out)]
    if ruleset == "external":
        space = tmp_path / "search_space.json"
        space.write_text(json.dumps(SEARCH_SPACE))
        args += ["--submission", str(NADAMW), "--search-space", str(space), "--trials", "2"]
    else:
        args += ["--submission", str(NADAMW_SELF)]
    algoperf(*args, check=True)
    return load_plan(out)


def slow_job(plan: Plan) -> Job:
    slow = [j for j in plan.jobs if j.hyperparameters["learning_rate"] == SLOW_LR]
    assert slow, "the test grid needs a trial that runs to its step cap"
    return slow[0]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def trial_events(plan: Plan, job: Job) -> list[dict]:
    path = plan.trial_dir(job) / ev.EVENTS_FILENAME
    return ev.read_events(path) if path.exists() else []


def checkpointed_mid_run(plan: Plan, job: Job, min_step: int = 20) -> bool:
    """The job has saved a checkpoint at ``min_step`` or later and is still training."""
    records = trial_events(plan, job)
    if any(r["type"] == ev.RUN_END for r in records):
        raise AssertionError(f"{job.name} ended before it could be interrupted")
    return any(r["type"] == ev.CHECKPOINT and r["data"]["global_step"] >= min_step
               for r in records)


def evaluated_mid_run(plan: Plan, job: Job, min_step: int = 20) -> bool:
    """The job has logged an eval at ``min_step`` or later and is still training."""
    records = trial_events(plan, job)
    if any(r["type"] == ev.RUN_END for r in records):
        raise AssertionError(f"{job.name} ended before it could be interrupted")
    return any(r["type"] == ev.EVAL and r["data"]["global_step"] >= min_step for r in records)


def states(plan: Plan) -> dict[int, str]:
    statuses, _ = job_statuses(plan)
    return {s.job.index: s.state for s in statuses}


def restarted_past_a_checkpoint(records: list[dict]) -> bool:
    """Whether the trial started again from step 0 although an earlier attempt had written a
    checkpoint. (An attempt stopped before its first checkpoint, such as the job running beside
    the interrupted one, restarts by design.)"""
    checkpointed = False
    for r in records:
        if r["type"] == ev.RUN_START and checkpointed:
            return True
        checkpointed |= r["type"] == ev.CHECKPOINT
    return False


def check_grid(plan: Plan, expect_score: bool = True) -> None:
    """Every planned trial is present exactly once, trained with the plan's hyperparameters
    and seed, its evals logged once each; the grid scores (1.0: it reached the target)."""
    statuses, warning = job_statuses(plan)
    assert warning is None
    assert {s.state for s in statuses} == {"done"}, [(s.job.label, s.state, s.detail)
                                                   for s in statuses]
    diag = dg.Diagnostics()
    (found,) = find_submissions([plan.directory], diag)
    assert found.name == plan.directory.name
    cells = sorted((int(t.study.removeprefix("study_")), t.trial_number) for t in found.trials)
    assert cells == sorted((j.study, j.trial) for j in plan.jobs)  # each exactly once
    for job in plan.jobs:
        trial_dir = plan.trial_dir(job)
        records = trial_events(plan, job)
        starts = [r for r in records if r["type"] == ev.RUN_START]
        assert starts and {s["data"]["seed"] for s in starts} == {job.seed}
        if plan.save_checkpoints:
            assert not restarted_past_a_checkpoint(records), job.label
        if plan.ruleset == "external":
            assert trial_files.read_hparams(trial_dir) == job.hyperparameters
        with open(trial_dir / "eval_measurements.csv", newline="") as f:
            steps = [int(row["global_step"]) for row in csv.DictReader(f)]
        assert steps and steps == sorted(set(steps)), steps  # no eval logged twice
    report = score([plan.directory], rules=plan.rules, ruleset=plan.ruleset,
                   bootstrap_replicates=0)
    (result,) = report.submissions
    assert result.name == plan.directory.name
    if expect_score:
        assert result.score == 1.0  # the only submission, and it reached the digits target
    bad = {dg.DUPLICATE_TRIAL, dg.CRASHED_TRIAL, dg.UNFINISHED_TRIAL, dg.NO_LOGS,
           dg.MALFORMED_EVENTS, dg.MALFORMED_CSV}
    assert not [w for w in report.warnings if w.kind in bad], report.warnings


def check_resumed_from_checkpoint(plan: Plan, job: Job) -> None:
    """The interrupted trial continued from its checkpoint to the step cap."""
    records = trial_events(plan, job)
    resumes = [r["data"] for r in records if r["type"] == ev.RESUME]
    assert len(resumes) == 1 and resumes[0]["global_step"] >= 20, resumes
    assert resumes[0]["preemption_count"] == 1
    (end,) = [r["data"] for r in records if r["type"] == ev.RUN_END]
    assert end["global_step"] == MAX_STEPS and end["reason"] == "max_steps"
    assert (plan.trial_dir(job) / trial_files.flags_filename(1)).exists()
