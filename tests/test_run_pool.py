"""`algoperf.run_pool`: several runs at once, each worker pinned to a CPU of its own.

The runs are real (the digits workload with the NAdamW and AdamW reference submissions, steps
capped); what the pool promises shows in their own records: a worker's trial was measured on
one CPU, a run in this process on all of them, and a refused run is raised in the parent.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from algoperf import run_pool
from algoperf.errors import UserError
from algoperf.progress import LiveProgress
from algoperf.runner import RunConfig, TrialResult

ROOT = Path(__file__).resolve().parent.parent


def config(tmp_path: Path, name: str, **changes) -> RunConfig:
    folder = ROOT / "submissions" / name
    values = dict(submission_path=folder / "submission_pytorch.py", workload="digits",
                  framework="pytorch", experiment_dir=tmp_path / "runs", experiment_name=name,
                  ruleset="external", tuning_search_space=folder / "tuning_search_space.json",
                  num_tuning_trials=1, seed=0, max_global_steps=40, save_checkpoints=False)
    return RunConfig(**{**values, **changes})


def quiet_display() -> tuple[LiveProgress, io.StringIO]:
    screen = io.StringIO()
    return LiveProgress("pool", Console(file=screen, force_terminal=False, width=200)), screen


@pytest.mark.skipif(len(run_pool.usable_cpus()) < 2, reason="needs two usable CPUs")
def test_two_runs_at_once_each_train_on_one_cpu_of_their_own(tmp_path):
    display, screen = quiet_display()
    with display:
        results = run_pool.run_all([("nadamw", config(tmp_path, "nadamw")),
                                    ("adamw", config(tmp_path, "adamw"))], 2, display)
    assert list(results) == ["nadamw", "adamw"]
    for label, (result,) in results.items():
        assert result.status == "completed" and result.global_step == 40, result
        assert result.quality["cpus"] == 1, result.quality
        assert (result.trial_dir / "eval_measurements.csv").is_file()
        assert f"{label}: 1 trial, 0 reached the target" in screen.getvalue()


def test_one_job_runs_in_this_process_on_every_usable_cpu(tmp_path):
    display, screen = quiet_display()
    with display:
        results = run_pool.run_all([("nadamw", config(tmp_path, "nadamw"))], 4, display)
    (result,) = results["nadamw"]
    assert result.status == "completed"
    assert result.quality["cpus"] == len(run_pool.usable_cpus())
    assert "nadamw: study 0 trial 1: completed: max_steps" in screen.getvalue()


@pytest.mark.skipif(len(run_pool.usable_cpus()) < 2, reason="needs two usable CPUs")
def test_a_refused_run_in_a_worker_is_raised_in_the_parent_with_its_message(tmp_path):
    display, _ = quiet_display()
    with display, pytest.raises(UserError, match="--num-tuning-trials"):
        run_pool.run_all([("nadamw", config(tmp_path, "nadamw")),
                          ("bad", config(tmp_path, "adamw", num_tuning_trials=0))], 2, display)


def finished(study: int, trial: int) -> TrialResult:
    return TrialResult(study=study, trial=trial, trial_dir=Path("t"), status="completed",
                       reason="target_reached", time_to_target=1.5,
                       accumulated_submission_time=1.5, global_step=10, num_evals=2,
                       preemption_count=0)


def test_shared_display_labels_each_runs_rows_and_retires_finished_runs_to_one_line():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=200)
    with LiveProgress("pool", console) as live:
        first, second = live.run_view("nadamw on digits"), live.run_view("adamw on digits")
        first.trial_started(0, 1, 1, None)
        second.trial_started(0, 1, 1, None)
        assert [key[0] for key in live.rows] == ["nadamw on digits", "adamw on digits"]
        first.trial_finished(finished(0, 1))
        live.retire("nadamw on digits", [finished(0, 1)])
        assert [key[0] for key in live.rows] == ["adamw on digits"]
    text = screen.getvalue()
    assert "nadamw on digits: 1 trial, 1 reached the target, fastest 1.50s" in text
