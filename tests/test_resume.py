"""Resume after preemption, for real: kill -9 a training run, rerun with --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from algoperf.logs.events import read_events, verify_chain
from algoperf.logs.measurements import read_measurements
from algoperf.tuning import trial_seed

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
    assert resume[0]["data"]["submission_sha256"] == events[0]["data"]["submission_sha256"]
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


# --- --resume continues only the run it was started as ---------------------------------------

NADAMW_SPACE = ROOT / "submissions" / "nadamw" / "tuning_search_space.json"


def changed(args: list[str], **options: str | None) -> list[str]:
    """``args`` with each ``--option`` (underscores for dashes) replaced, or dropped if None."""
    args = list(args)
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        while flag in args:
            i = args.index(flag)
            del args[i:i + 2]
        if value is not None:
            args += [flag, value]
    return args


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def started(tmp_path_factory) -> Path:
    """A finished 3-step run (--seed 3, the slow-learning list space) to resume differently."""
    tmp = tmp_path_factory.mktemp("started")
    done = subprocess.run(command(tmp, "pytorch", "--max-global-steps", "3"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    other = tmp / "other" / "submission.py"
    other.parent.mkdir()
    other.write_text(slowed_baseline(tmp, "pytorch").read_text() + "# tuned differently\n")
    (tmp / "other_space.json").write_text(slow_learning_space(tmp).read_text().replace(
        "1e-06", "2e-06"))
    return tmp


def resume_args(tmp: Path, **options: str | None) -> list[str]:
    return changed(command(tmp, "pytorch", "--max-global-steps", "3", "--resume"), **options)


@pytest.mark.parametrize("options,message", [
    (dict(seed="4"), "--resume: this run was started with --seed 3, not 4; pass --seed 3 or "
                     "start a new --experiment-dir"),
    (dict(max_global_steps="4"), "started with --max-global-steps 3, not 4; pass "
                                 "--max-global-steps 3 or start a new --experiment-dir"),
    (dict(max_global_steps=None), "started with --max-global-steps 3, not without it; pass "
                                  "--max-global-steps 3"),
    (dict(rules="v0.5"), "started with --rules v0.6, not v0.5; pass --rules v0.6"),
    (dict(tuning_ruleset="self", tuning_search_space=None),
     "started with --tuning-ruleset external, not self; pass --tuning-ruleset external"),
    (dict(submission="OTHER_SUBMISSION"), "started with another submission (source sha256 "),
    (dict(tuning_search_space="OTHER_SPACE"), "started with another search space (sha256 "),
])
def test_resume_with_a_different_option_is_refused_naming_it_and_writes_nothing(
        started, options, message):
    others = {"OTHER_SUBMISSION": str(started / "other" / "submission.py"),
              "OTHER_SPACE": str(started / "other_space.json")}
    options = {k: others.get(v, v) for k, v in options.items()}
    before = files(started / "exp")
    done = subprocess.run(resume_args(started, **options), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --resume: "), done.stderr
    assert message in lines[0]
    assert files(started / "exp") == before


def test_resume_compares_what_the_run_recorded_not_only_its_folder(started, tmp_path):
    # A workload folder renamed by hand (digits_pytorch -> digits_jax) is not continued as JAX.
    shutil.copytree(started / "exp", tmp_path / "exp")
    study = tmp_path / "exp" / "resume" / "study_0"
    (study / "digits_pytorch").rename(study / "digits_jax")
    before = files(tmp_path / "exp")
    args = changed(command(tmp_path, "jax", "--max-global-steps", "3", "--resume"))
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert ("this run was started with --framework pytorch, not jax; pass --framework pytorch"
            in done.stderr)
    assert files(tmp_path / "exp") == before


def test_resume_without_seed_continues_with_the_seed_the_run_was_started_with(tmp_path):
    space = ["--tuning-search-space", str(NADAMW_SPACE), "--num-tuning-trials", "2",
             "--max-global-steps", "2"]
    first = subprocess.run(command(tmp_path, "pytorch", *space, "--hparam-end-index", "1"),
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(changed(command(tmp_path, "pytorch", *space, "--resume"), seed=None),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    workload = tmp_path / "exp" / "resume" / "study_0" / "digits_pytorch"
    start = read_events(workload / "trial_2" / "events.jsonl")[0]["data"]
    assert start["master_seed"] == 3 and start["seed"] == trial_seed(3, "digits", 0, 2)


def test_docker_run_refuses_a_different_resume_on_the_host_before_any_container(started):
    from algoperf.containers.docker_run import plan_run
    from algoperf.errors import UserError
    from algoperf.run_command import run as run_command

    args = resume_args(started, seed="4")
    assert args[1:4] == ["-m", "algoperf", "run"]
    options = run_command.make_context("run", args[4:]).params  # `algoperf docker run`'s too
    before = files(started / "exp")
    with pytest.raises(UserError, match="started with --seed 3, not 4; pass --seed 3"):
        plan_run(options, debug=False)
    assert files(started / "exp") == before
