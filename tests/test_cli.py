"""The command line: commands exist, errors are one line with the right exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.logs.events import read_events

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "submissions" / "nadamw_self_tuning"


def algoperf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def assert_one_line_error(done: subprocess.CompletedProcess, status: int, text: str) -> None:
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and text in lines[0]
    assert "Traceback" not in done.stderr


def test_help_lists_the_commands():
    done = algoperf("--help")
    assert done.returncode == 0
    for command in ("run", "demo", "score", "workloads"):
        assert command in done.stdout


@pytest.mark.parametrize("group", [(), ("sweep",), ("docker",), ("datasets",), ("keys",),
                                   ("workloads",), ("env",)])
def test_help_lists_every_command_with_its_first_sentence_whole(group):
    """In a narrow terminal too: click would cut summaries mid-sentence with '...'."""
    import click

    from algoperf.cli import cli
    from algoperf.terminal import summary

    done = subprocess.run([sys.executable, "-m", "algoperf", *group, "--help"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "60"})
    assert done.returncode == 0, done.stderr
    # Words joined again as the terminal wrapped them (at spaces and after hyphens).
    listing = " ".join(done.stdout.split("Commands:")[1].split()).replace("- ", "-")
    assert "..." not in listing
    ctx = click.Context(cli)
    command = cli
    for name in group:
        command = command.get_command(ctx, name)
    for name in command.list_commands(ctx):
        assert f"{name} {summary(command.get_command(ctx, name))}" in listing


def test_workloads_lists_targets_and_budgets():
    done = algoperf("workloads")
    assert done.returncode == 0
    assert "digits" in done.stdout and "imagenet_resnet" in done.stdout
    assert "66159" in done.stdout  # v0.6 imagenet_resnet budget
    assert "63008" in algoperf("workloads", "--rules", "v0.5").stdout


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--submission", str(BASELINE), "--workload", "digits", "--framework",
            "pytorch", "--tuning-ruleset", "self", "--experiment-dir", str(tmp_path / "exp"),
            "--seed", "0", *extra]


def test_unknown_framework_is_one_line(tmp_path):
    args = run_args(tmp_path)
    args[args.index("pytorch")] = "tensorflow"
    assert_one_line_error(algoperf(*args), 2, "--framework")


def test_unknown_workload_is_one_line_with_a_suggestion(tmp_path):
    args = run_args(tmp_path)
    args[args.index("digits")] = "mnsit"
    assert_one_line_error(algoperf(*args), 2, "Did you mean 'mnist'")


def test_missing_submission_is_one_line(tmp_path):
    args = run_args(tmp_path)
    args[args.index(str(BASELINE))] = str(tmp_path / "missing.py")
    assert_one_line_error(algoperf(*args), 2, "does not exist")


def test_a_run_prints_its_summary_and_exits_zero(tmp_path):
    done = algoperf(*run_args(tmp_path, "--max-global-steps", "3"))
    assert done.returncode == 0, done.stderr
    assert "time to validation target" in done.stdout
    assert (tmp_path / "exp" / "nadamw_self_tuning" / "study_0" / "digits_pytorch" / "trial_1"
            / "events.jsonl").exists()


def test_a_run_without_a_seed_prints_the_one_it_drew(tmp_path):
    args = run_args(tmp_path, "--max-global-steps", "2")
    del args[args.index("--seed"):args.index("--seed") + 2]
    done = algoperf(*args)
    assert done.returncode == 0, done.stderr
    start = next(e for e in read_events(tmp_path / "exp" / "nadamw_self_tuning" / "study_0"
                                         / "digits_pytorch" / "trial_1" / "events.jsonl")
                 if e["type"] == "run_start")
    seed = start["data"]["master_seed"]
    assert f"seed {seed} drawn at random (--seed {seed} repeats this run)" in done.stdout
    assert "drawn at random" not in algoperf(*run_args(tmp_path / "b", "--max-global-steps",
                                                       "2")).stdout


def test_a_failed_trial_exits_one_naming_the_failure(tmp_path):
    sub = tmp_path / "bad" / "submission.py"
    sub.parent.mkdir()
    sub.write_text((BASELINE / "submission_pytorch.py").read_text()
                   + "\n\ndef update_params(**kwargs):\n    raise RuntimeError('boom')\n")
    args = run_args(tmp_path, "--max-global-steps", "3")
    args[args.index(str(BASELINE))] = str(sub)
    done = algoperf(*args)
    assert done.returncode == 1
    assert "failed: RuntimeError at submission.py" in done.stderr and "boom" in done.stderr
    assert "Traceback" not in done.stderr


def external_args(tmp_path: Path, *extra: str) -> list[str]:
    """`algoperf run` of the external-tuning NAdamW baseline (5 trials per study under v0.6)."""
    nadamw = ROOT / "submissions" / "nadamw"
    return ["run", "--submission", str(nadamw), "--workload", "digits", "--framework",
            "pytorch", "--tuning-search-space", str(nadamw / "tuning_search_space.json"),
            "--experiment-dir", str(tmp_path / "exp"), "--seed", "0", "--max-global-steps", "1",
            *extra]


@pytest.mark.parametrize("options,text", [
    (["--num-tuning-trials", "0"], "--num-tuning-trials must be at least 1, got 0"),
    (["--num-tuning-trials", "-3"], "--num-tuning-trials must be at least 1, got -3"),
    (["--num-studies", "-1"], "--num-studies must be at least 1, got -1"),
    (["--max-global-steps", "-5"], "--max-global-steps must be at least 1, got -5"),
    (["--study", "-1"], "--study must be a study index, 0 or more, got -1"),
    (["--hparam-start-index", "3", "--hparam-end-index", "1"],
     "--hparam-start-index 3 is not before --hparam-end-index 1: no trial to run"),
    (["--hparam-start-index", "-1"],
     "--hparam-start-index must be a trial index, 0 or more, got -1"),
    (["--hparam-start-index", "5"], "--hparam-start-index 5 selects no trial: a study has 5"),
    (["--num-tuning-trials", "2", "--hparam-end-index", "0"],
     "--hparam-start-index 0 is not before --hparam-end-index 0"),
])
def test_bad_counts_and_trial_indices_are_one_line_and_write_nothing(tmp_path, options, text):
    assert_one_line_error(algoperf(*external_args(tmp_path, *options)), 2, text)
    assert not (tmp_path / "exp").exists()


def test_a_trial_index_past_a_list_search_space_is_one_line_and_writes_nothing(tmp_path):
    space = tmp_path / "one.json"
    space.write_text(json.dumps([{"learning_rate": 0.003, "one_minus_beta1": 0.1, "beta2": 0.999,
                                  "weight_decay": 0.0, "warmup_factor": 0.05,
                                  "dropout_rate": 0.0, "label_smoothing": 0.0}]))
    args = external_args(tmp_path, "--tuning-search-space", str(space),
                         "--hparam-start-index", "1")
    assert_one_line_error(algoperf(*args), 2, "--hparam-start-index 1 selects no trial: the "
                          f"search space {space} lists 1 configuration(s)")
    assert not (tmp_path / "exp").exists()


def test_existing_experiment_is_refused_then_resumed(tmp_path):
    assert algoperf(*run_args(tmp_path, "--max-global-steps", "2")).returncode == 0
    assert_one_line_error(algoperf(*run_args(tmp_path, "--max-global-steps", "2")), 2,
                          "already exists; pass --resume")
    assert algoperf(*run_args(tmp_path, "--max-global-steps", "2", "--resume")).returncode == 0


def test_experiment_name_defaults_to_the_submission_folder_and_can_be_set(tmp_path):
    from algoperf.run_options import config_from_options

    def config(**extra):
        options = dict(submission_path=BASELINE, workload="digits", framework="pytorch",
                       experiment_dir=tmp_path, experiment_name=None, data_dir="~/data")
        options.update(extra)
        return config_from_options(**options)

    assert config().experiment_name == "nadamw_self_tuning"
    assert config(submission_path=BASELINE / "submission_jax.py").experiment_name == (
        "nadamw_self_tuning")
    assert config(experiment_name="mine").experiment_name == "mine"


def test_trials_with_the_same_hardware_finding_share_one_summary_line(tmp_path):
    done = algoperf(*external_args(tmp_path, "--num-tuning-trials", "2", "--max-global-steps",
                                   "2"))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("hardware, ")]
    assert lines == [lines[0]] and lines[0].startswith("hardware, all 2 trials: ")
    assert "not certifiable" in lines[0]
