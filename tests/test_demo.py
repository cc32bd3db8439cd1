"""`algoperf demo`: a reduced grid end to end, where its submissions come from, and its layout.

The end-to-end test runs the real demo (two algorithms, two dev workloads, one trial each,
steps capped) in a subprocess, then scores its output folder again as a user would: the
demo's own scoring and report folders must not be mistaken for submissions. The wheel test
builds the package and finds the reference submissions in it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from algoperf import demo
from algoperf.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def algoperf(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algoperf", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_packaged_submissions_are_this_checkouts_reference_submissions():
    folder = demo.packaged_submissions()
    assert folder == (ROOT / "submissions").resolve()
    for name in demo.DEFAULT_ALGORITHMS.split(","):
        assert (folder / name / "submission_pytorch.py").is_file()
        assert (folder / name / "tuning_search_space.json").is_file()


def test_inside_another_checkout_the_demo_refuses_to_run_the_installed_submissions(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'algoperf'\n")
    (tmp_path / "submissions" / "nadamw").mkdir(parents=True)
    with pytest.raises(UserError, match=r"installed from .*not from the checkout.*"
                                        r"--submissions-dir"):
        demo.resolve_submissions(None, cwd=tmp_path)
    chosen = demo.resolve_submissions(tmp_path / "submissions", cwd=tmp_path)
    assert chosen == (tmp_path / "submissions").resolve()


def test_outside_any_checkout_the_demo_uses_the_installed_submissions(tmp_path):
    assert demo.resolve_submissions(None, cwd=tmp_path) == demo.packaged_submissions()


def test_unknown_algorithm_is_one_line_naming_the_choices(tmp_path):
    done = algoperf("demo", "--algorithms", "nadamw,sgdx", "--out", str(tmp_path / "out"),
                    cwd=tmp_path, timeout=120)
    assert done.returncode != 0
    assert ("no algorithm 'sgdx'; choose from adafactor, adamw, lamb, momentum, nadamw, nesterov, "
            "sam, shampoo") in done.stderr
    assert "Traceback" not in done.stderr


def test_reduced_demo_runs_scores_and_its_output_folder_scores_again_without_warnings(
        tmp_path):
    out = tmp_path / "demo-output"
    done = algoperf("demo", "--algorithms", "nadamw,momentum", "--workloads", "digits,mnist1d",
                    "--num-tuning-trials", "1", "--max-global-steps", "60", "--out", str(out),
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("nadamw", "momentum"):
        for workload in ("digits", "mnist1d"):
            trial = out / "runs" / "pytorch" / name / "study_0" / f"{workload}_pytorch" / "trial_1"
            assert (trial / "eval_measurements.csv").is_file()
            assert (trial / "events.jsonl").is_file()
    assert (out / "scoring" / "pytorch" / "performance_profile.png").is_file()
    assert "nadamw" in done.stdout and "momentum" in done.stdout
    assert f"algoperf score {out}" in done.stdout
    page = out / "report" / "pytorch" / "index.html"
    assert page.is_file() == ("leaderboard page:" in done.stdout)

    again = algoperf("score", str(out), cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    for folder in ("scoring", "report"):
        assert f"logs in {folder}" not in again.stdout + again.stderr
    assert "skipped" not in again.stdout + again.stderr


def test_wheel_ships_the_reference_submissions_the_demo_runs(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--quiet", "--wheel-dir", str(tmp_path),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("algoperf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in demo.DEFAULT_ALGORITHMS.split(","):
        for file in ("submission_jax.py", "submission_pytorch.py", "tuning_search_space.json"):
            assert f"algoperf/reference_submissions/{name}/{file}" in names
    assert "algoperf/datasets/manifests/python_docs.json" in names
    assert "algoperf/workloads/charlm/charlm_pytorch/workload.py" in names


def test_all_names_every_reference_submission_with_a_search_space():
    folder = demo.packaged_submissions()
    known = sorted(p.name for p in folder.iterdir() if (p / "tuning_search_space.json").is_file())
    assert demo.algorithm_names("all", known) == [
        "adafactor", "adamw", "lamb", "momentum", "nadamw", "nesterov", "sam", "shampoo"]
    assert demo.algorithm_names("sam, lamb", known) == ["sam", "lamb"]


def test_demo_grid_runs_non_default_baselines_one_at_a_time_into_its_leaderboard(tmp_path):
    out = tmp_path / "demo-output"
    done = algoperf("demo", "--algorithms", "lamb,shampoo", "--workloads", "digits",
                    "--num-tuning-trials", "1", "--max-global-steps", "30", "--jobs", "1",
                    "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "scoring" / "pytorch" / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["submission"] for row in rows) == ["lamb", "shampoo"], rows
    assert "lamb" in done.stdout and "shampoo" in done.stdout
    for name in ("lamb", "shampoo"):
        trial = out / "runs" / "pytorch" / name / "study_0" / "digits_pytorch" / "trial_1"
        assert (trial / "eval_measurements.csv").is_file()
