"""Optimizer states the checkpoint writer cannot serialize, for real: `algoperf run` of
submissions whose optimizer state holds an object of their own class, killed with kill -9 and
continued with --resume, in JAX and PyTorch.

A picklable object goes through the general serializer and comes back on resume (the
submission checks its own step count against the global step on every call, so a state that
was not restored fails the trial). An object holding a threading.Lock cannot be written at
all: checkpoints are switched off for the trial (one warning line, a `checkpoint_disabled`
event), the trial trains on, and --resume says in one line why it starts the trial again
from step 0.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from algoperf.logs.events import read_events, verify_chain

ROOT = Path(__file__).resolve().parent.parent
STEPS = 100
ENDED = {"max_steps", "budget_exhausted"}  # a busy machine may spend digits' 30 s first

COMMON = """\
import importlib.util, sys, threading, time
_spec = importlib.util.spec_from_file_location("_baseline", {baseline!r})
_base = sys.modules["_baseline"] = importlib.util.module_from_spec(_spec)  # as an import does
_spec.loader.exec_module(_base)
get_batch_size = _base.get_batch_size
data_selection = _base.data_selection
prepare_for_eval = _base.prepare_for_eval


class StepCount:
    \"\"\"The submission's own class, kept in its optimizer state.\"\"\"

    def __init__(self, with_lock):
        self.steps = 0
        if with_lock:
            self.lock = threading.Lock()  # no serializer writes a lock

    def tick(self, global_step):
        if self.steps != global_step:
            raise RuntimeError(f"StepCount is at {{self.steps}} but the global step is "
                               f"{{global_step}}: the optimizer state was not restored")
        self.steps += 1
"""

JAX = COMMON + """

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    opt_state, update_fn = _base.init_optimizer_state(workload, model_params, model_state,
                                                      hyperparameters, rng)
    return (opt_state, StepCount({with_lock})), update_fn


def update_params(**kwargs):
    time.sleep(0.01)
    (opt_state, count), update_fn = kwargs["optimizer_state"]
    count.tick(kwargs["global_step"])
    kwargs["optimizer_state"] = (opt_state, update_fn)
    (opt_state, update_fn), params, model_state = _base.update_params(**kwargs)
    return ((opt_state, count), update_fn), params, model_state
"""

# PyTorch: a picklable object is an optimizer_state entry of its own (no state_dict()); the
# lock-holding one sits in the torch optimizer's param group, so its state_dict() holds it.
PYTORCH = COMMON + """

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    state = _base.init_optimizer_state(workload, model_params, model_state, hyperparameters,
                                       rng)
    if {with_lock}:
        state["optimizer"].param_groups[0]["count"] = StepCount(True)
    else:
        state["count"] = StepCount(False)
    return state


def update_params(**kwargs):
    time.sleep(0.01)
    state = kwargs["optimizer_state"]
    count = state["count"] if "count" in state else state["optimizer"].param_groups[0]["count"]
    count.tick(kwargs["global_step"])
    return _base.update_params(**kwargs)
"""


def submission(tmp_path: Path, framework: str, with_lock: bool) -> Path:
    path = tmp_path / "stepcount" / f"submission_{framework}.py"
    path.parent.mkdir(exist_ok=True)
    baseline = ROOT / "submissions" / "nadamw" / f"submission_{framework}.py"
    template = JAX if framework == "jax" else PYTORCH
    path.write_text(textwrap.dedent(template.format(baseline=str(baseline),
                                                    with_lock=with_lock)))
    return path


def command(tmp_path: Path, framework: str, with_lock: bool, *extra: str) -> list[str]:
    space = tmp_path / "space.json"  # learns, but never reaches the target
    space.write_text(json.dumps([{
        "learning_rate": 1e-6, "one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.0,
        "warmup_factor": 0.05, "dropout_rate": 0.0, "label_smoothing": 0.0}]))
    return [sys.executable, "-m", "algoperf", "run",
            "--submission", str(submission(tmp_path, framework, with_lock)),
            "--workload", "digits", "--framework", framework,
            "--experiment-dir", str(tmp_path / "exp"), "--experiment-name", "ckpt",
            "--tuning-search-space", str(space), "--num-tuning-trials", "1", "--seed", "5",
            "--max-global-steps", str(STEPS), *extra]


def trial_dir(tmp_path: Path, framework: str) -> Path:
    return tmp_path / "exp" / "ckpt" / "study_0" / f"digits_{framework}" / "trial_1"


def kill_after(proc: subprocess.Popen, events: Path, event_type: str) -> None:
    """kill -9 the run once ``event_type`` is in its log."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: "
                                 f"{proc.stderr.read()[-2000:]}")
        if events.exists() and any(e["type"] == event_type for e in read_events(events)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.05)
    raise AssertionError(f"no {event_type} event appeared")


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_own_class_in_optimizer_state_is_checkpointed_and_restored_on_resume(tmp_path,
                                                                              framework):
    trial = trial_dir(tmp_path, framework)
    proc = subprocess.Popen(command(tmp_path, framework, False), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kill_after(proc, trial / "events.jsonl", "checkpoint")

    done = subprocess.run(command(tmp_path, framework, False, "--resume"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(trial / "events.jsonl")
    resumes = [e["data"] for e in events if e["type"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["global_step"] > 0  # not a restart from 0
    assert [e["type"] for e in events].count("run_start") == 1
    assert not any(e["type"] == "checkpoint_disabled" for e in events)
    assert events[-1]["data"]["status"] == "completed"
    assert events[-1]["data"]["reason"] in ENDED
    assert not verify_chain(trial / "events.jsonl")


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_unserializable_optimizer_state_switches_checkpoints_off_and_resume_restarts_at_0(
        tmp_path, framework):
    trial = trial_dir(tmp_path, framework)
    proc = subprocess.Popen(command(tmp_path, framework, True), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kill_after(proc, trial / "events.jsonl", "checkpoint_disabled")
    assert not [p for p in trial.iterdir() if p.name.startswith("checkpoint")]

    done = subprocess.run(command(tmp_path, framework, True, "--resume"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]  # the trial trained on to its end
    restart = [line for line in done.stderr.splitlines() if "restarting from step 0" in line]
    assert len(restart) == 1, done.stderr[-3000:]
    assert "study 0 trial 1: restarting from step 0: its checkpoints were switched off at " \
           "step 1" in restart[0] and "lock" in restart[0]
    # One warning for the trial, however many evals it had.
    assert sum("checkpoints switched off" in line for line in done.stderr.splitlines()) == 1

    events = read_events(trial / "events.jsonl")
    types = [e["type"] for e in events]
    assert types.count("run_start") == 2 and "resume" not in types  # started again from 0
    assert types.count("eval") > types.count("checkpoint_disabled") == 2  # once per attempt
    off = [e["data"] for e in events if e["type"] == "checkpoint_disabled"][-1]
    assert off["global_step"] == 1 and "lock" in off["reason"]
    assert "checkpoint" not in types
    assert events[-1]["data"]["status"] == "completed"
    assert events[-1]["data"]["reason"] in ENDED
    assert not verify_chain(trial / "events.jsonl")
    # Verification knows the event: unsigned and so not certifiable (2), but nothing fails.
    verified = subprocess.run([sys.executable, "-m", "algoperf", "verify", str(trial),
                               "--out", str(tmp_path / "verification")],
                              capture_output=True, text=True, timeout=600)
    assert verified.returncode == 2, verified.stdout[-3000:]
    assert "unknown event type" not in verified.stdout
