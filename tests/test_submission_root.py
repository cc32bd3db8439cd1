"""Submissions that import their own modules by repository path, as AlgoPerf loads them.

AlgoPerf's runner runs from the repository root, which is on its sys.path, so a submission
may write ``from submissions.self_tuning.<name>.muon import ...``. Here a temporary
repository holds such a submission (its optimizer in a sibling helper module), run from the
root with the `algoperf` console script (which, unlike ``python -m``, does not put the current
directory on sys.path): through `algoperf run`, `algoperf sweep` and, on the real engine,
`algoperf docker run`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from algoperf.logs.events import read_events

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "submissions" / "nadamw_self_tuning" / "submission_pytorch.py"
SUBMISSION = "submissions/self_tuning/mysub/submission.py"  # relative to the repository root
IMPORTS_BY_REPO_PATH = """\
from submissions.self_tuning.mysub.muon import (  # noqa: F401 - AlgoPerf's repository path
    data_selection, get_batch_size, init_optimizer_state, prepare_for_eval, update_params)
"""


def algoperf_command() -> list[str]:
    """The console script users run; ``python -P -m algoperf`` (no cwd on sys.path either)
    where it is not installed."""
    script = Path(sys.executable).with_name("algoperf")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "algoperf"]


def algoperf(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*algoperf_command(), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def repository(tmp_path: Path) -> Path:
    """A repository root holding one submission whose code is in a sibling helper module."""
    root = tmp_path / "repo"
    folder = root / SUBMISSION.rsplit("/", 1)[0]
    folder.mkdir(parents=True)
    (folder / "muon.py").write_text(HELPER.read_text())
    (folder / "submission.py").write_text(IMPORTS_BY_REPO_PATH)
    return root


def run_args(experiment_dir: Path, *extra: str) -> list[str]:
    return ["--workload", "digits", "--framework", "pytorch", "--tuning-ruleset", "self",
            "--experiment-dir", str(experiment_dir), "--max-global-steps", "5", "--seed", "0",
            *extra]


def assert_trained(experiment_dir: Path, steps: int = 5) -> None:
    (events,) = experiment_dir.rglob("events.jsonl")
    end = read_events(events)[-1]
    assert end["type"] == "run_end" and end["data"]["status"] == "completed", end
    assert end["data"]["global_step"] == steps


def test_submission_importing_its_helper_by_repository_path_runs_from_the_root(tmp_path):
    root = repository(tmp_path)
    done = algoperf("run", "--submission", SUBMISSION, *run_args(tmp_path / "exp"), cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_trained(tmp_path / "exp")


def test_submission_root_option_puts_the_root_on_sys_path_from_anywhere(tmp_path):
    root = repository(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = algoperf("run", "--submission", str(root / SUBMISSION), "--submission-root",
                    str(root), *run_args(tmp_path / "exp"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_trained(tmp_path / "exp")


def test_repository_path_import_outside_the_root_says_where_to_run_from(tmp_path):
    root = repository(tmp_path)
    done = algoperf("run", "--submission", str(root / SUBMISSION), *run_args(tmp_path / "exp"),
                    cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "No module named 'submissions'" in lines[0]
    assert f"run from {root} or pass --submission-root {root}" in lines[0]


def test_submission_root_that_does_not_hold_the_submission_is_one_line(tmp_path):
    root = repository(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    done = algoperf("run", "--submission", str(root / SUBMISSION), "--submission-root",
                    str(other), *run_args(tmp_path / "exp"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --submission-root {other} does not hold the "
                                   f"submission {root / SUBMISSION}; pass the repository "
                                   "root that holds it")
    assert not (tmp_path / "exp").exists()


def test_sweep_jobs_put_the_planned_root_on_sys_path_wherever_they_run(tmp_path):
    root = repository(tmp_path)
    out = tmp_path / "mysub"
    planned = algoperf("sweep", "plan", "--submission", SUBMISSION, "--framework", "pytorch",
                       "--ruleset", "self", "--workloads", "digits", "--studies", "1",
                       "--max-global-steps", "5", "--out", str(out), cwd=root)
    assert planned.returncode == 0, planned.stderr
    elsewhere = tmp_path / "elsewhere"  # the jobs run from here, not from the root
    elsewhere.mkdir()
    done = algoperf("sweep", "run", str(out), "--runtime", "host", cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_trained(out)
    (log,) = (out / "jobs" / "logs").glob("*.log")
    assert f"--submission-root {root}" in log.read_text()


def test_submission_importing_its_helper_by_repository_path_runs_in_docker_from_the_root(
        cpu_image, tmp_path):
    root = repository(tmp_path)
    done = algoperf("docker", "run", "--image", cpu_image.id, "--submission", SUBMISSION,
                    *run_args(tmp_path / "exp"), cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_trained(tmp_path / "exp")
    start = next(r for r in read_events(next((tmp_path / "exp").rglob("events.jsonl")))
                 if r["type"] == "run_start")
    assert start["data"]["image_digest"] == cpu_image.id  # it ran in the sandbox
    # At its repository path under /submission, which stands in for the root inside.
    assert start["data"]["submission"] == "/submission/" + SUBMISSION


def test_docker_run_mounts_only_the_submission_folder_at_its_repository_path(tmp_path,
                                                                             monkeypatch):
    from algoperf.containers.docker_run import plan_container
    from algoperf.containers.sandbox import BindMount
    from algoperf.run_command import run as run_command
    from algoperf.run_options import config_from_options

    root = repository(tmp_path)
    monkeypatch.chdir(root)
    values = run_command.make_context("run", ["--submission", SUBMISSION,
                                              *run_args(tmp_path / "exp")]).params
    plan = plan_container(config_from_options(**dict(values)), values, data_dir_given=False)
    inside = run_command.make_context("run", list(plan.run_args)).params
    assert inside["submission_path"] == Path("/submission/" + SUBMISSION)
    assert inside["submission_root"] == Path("/submission")
    folder = root / SUBMISSION.rsplit("/", 1)[0]
    assert [m for m in plan.mounts if m.source == folder] == [
        BindMount(folder, "/submission/submissions/self_tuning/mysub")]
    assert not [m for m in plan.mounts if m.source == root]  # the rest of the repository stays out
