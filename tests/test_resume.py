"""Resume after preemption, for real: kill -9 a training run, rerun with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from algoperf.logs.events import read_events, verify_chain
from algoperf.logs.measurements import read_measurements

ROOT = Path(__file__).resolve().parent.parent
STEPS = 400


def slow_learning_space(tmp_path: Path) -> Path:
    """One NAdamW point with a tiny learning rate: it learns, but never reaches the target."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps([{
        "learning_rate": 1e-6, "one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.0,
        "warmup_factor": 0.05, "dropout_rate": 0.0, "label_smoothing": 0.0,
    }]))
    return space


def slowed_baseline(tmp_path: Path, framework: str) -> Path:
    """The NAdamW baseline, 10 ms slower per step, so a run lasts long enough to be killed."""
    path = tmp_path / "sub" / "submission.py"
    path.parent.mkdir(exist_ok=True)
    baseline = ROOT / "submissions" / "nadamw" / f"submission_{framework}.py"
    path.write_text(textwrap.dedent(f"""\
        import importlib.util, time
        _spec = importlib.util.spec_from_file_location("_baseline", {str(baseline)!r})
        _base = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_base)
        get_batch_size = _base.get_batch_size
        init_optimizer_state = _base.init_optimizer_state
        data_selection = _base.data_selection
        prepare_for_eval = _base.prepare_for_eval

        def update_params(**kwargs):
            time.sleep(0.01)
            return _base.update_params(**kwargs)
        """))
    return path


def command(tmp_path: Path, framework: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "algoperf", "run",
            "--submission", str(slowed_baseline(tmp_path, framework)),
            "--workload", "digits", "--framework", framework,
            "--experiment-dir", str(tmp_path / "exp"), "--experiment-name", "resume",
            "--tuning-search-space", str(slow_learning_space(tmp_path)),
            "--num-tuning-trials", "1", "--seed", "3",
            "--max-global-steps", str(STEPS), *extra]


def wait_for_checkpoints(trial_dir: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        if trial_dir.exists():
            names = [p for p in trial_dir.iterdir() if p.name.startswith("checkpoint_")]
            events = trial_dir / "events.jsonl"
            if names and events.exists() and sum(
                    e["type"] == "checkpoint" for e in read_events(events)) >= count:
                return
        time.sleep(0.05)
    raise AssertionError("no checkpoints appeared")


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_kill_9_then_resume_continues_from_the_last_checkpoint(tmp_path, framework):
    env = dict(os.environ)
    trial_dir = tmp_path / "exp" / "resume" / "study_0" / f"digits_{framework}" / "trial_1"
    proc = subprocess.Popen(command(tmp_path, framework), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_checkpoints(trial_dir, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_measurements(trial_dir / "eval_measurements.csv")
    checkpoint_steps = [e["data"]["global_step"] for e in read_events(trial_dir / "events.jsonl")
                        if e["type"] == "checkpoint"]
    assert int(before[-1]["global_step"]) < STEPS

    done = subprocess.run(command(tmp_path, framework, "--resume"), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    rows = read_measurements(trial_dir / "eval_measurements.csv")
    steps = [int(r["global_step"]) for r in rows]
    assert steps == sorted(set(steps)), "an eval row was duplicated or reordered"
    last_ckpt = checkpoint_steps[-1]
    kept = [int(r["global_step"]) for r in before if int(r["global_step"]) <= last_ckpt]
    assert steps[:len(kept)] == kept, "an eval row from before the kill was lost"
    assert steps[len(kept)] == last_ckpt + 1  # the first eval after resuming
    assert steps[-1] == STEPS
    assert {r["preemption_count"] for r in rows[:len(kept)]} == {"0"}
    assert {r["preemption_count"] for r in rows[len(kept):]} == {"1"}
    # Submission time continues from the checkpoint instead of restarting.
    assert float(rows[len(kept)]["score"]) > float(rows[len(kept) - 1]["score"])
    assert (trial_dir / "meta_data_1.json").exists() and (trial_dir / "flags_1.json").exists()
    events = read_events(trial_dir / "events.jsonl")
    resume = [e for e in events if e["type"] == "resume"]
    assert len(resume) == 1 and resume[0]["data"]["global_step"] == last_ckpt
    assert resume[0]["data"]["preemption_count"] == 1
    assert events[-1]["type"] == "run_end"
    assert not verify_chain(trial_dir / "events.jsonl")


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path):
    first = subprocess.run(command(tmp_path, "pytorch") + ["--max-global-steps", "5"],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    trial_dir = tmp_path / "exp" / "resume" / "study_0" / "digits_pytorch" / "trial_1"
    events = (trial_dir / "events.jsonl").read_bytes()
    again = subprocess.run(command(tmp_path, "pytorch") + ["--max-global-steps", "5", "--resume"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (trial_dir / "events.jsonl").read_bytes() == events
