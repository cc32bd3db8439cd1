"""--reexecute: the first steps of a logged trial run again on this CPU and match its logs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from algoperf.verification.findings import FAIL, PASS, UNCERTIFIABLE
from algoperf.verification.reexecute import Settings, reexecution
from algoperf.verification.verify import verify

ROOT = Path(__file__).resolve().parent.parent
NADAMW = ROOT / "submissions" / "nadamw"
STEPS = 20


def run_trial(experiment: Path, framework: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "algoperf", "run", "--submission",
         str(NADAMW / f"submission_{framework}.py"), "--workload", "digits", "--framework",
         framework, "--experiment-dir", str(experiment), "--tuning-search-space",
         str(NADAMW / "tuning_search_space.json"), "--num-tuning-trials", "1", "--seed", "11",
         "--max-global-steps", "60"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return experiment


@pytest.fixture(scope="module")
def pytorch_run(tmp_path_factory) -> Path:
    return run_trial(tmp_path_factory.mktemp("reexec"), "pytorch")


def reexecution_check(path: Path, **settings):
    result = verify(path, reexecute=reexecution(Settings(STEPS, **settings)))
    return next(c for c in result.checks if c.name.startswith("re-execution")), result


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_first_steps_reproduce_the_logged_losses_and_first_eval(framework, pytorch_run,
                                                                 tmp_path):
    path = pytorch_run if framework == "pytorch" else run_trial(tmp_path, "jax")
    check, _ = reexecution_check(path)
    assert check.status == PASS, check
    # PyTorch's baseline logs loss and grad norm at every one of the first 100 steps (2 x 20
    # values); JAX's at step 0 only (2 values); both have the first eval's metrics.
    compared = int(check.summary.split()[0])
    assert compared >= (40 if framework == "pytorch" else 2) + 6


def test_a_logged_loss_that_the_code_does_not_produce_fails(pytorch_run, tmp_path):
    path = Path(shutil.copytree(pytorch_run, tmp_path / "copy"))
    measurements = next(path.rglob("measurements.csv"))
    lines = measurements.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    number = next(i for i, line in enumerate(lines)
                  if line.startswith("5,") and line.split(",")[header.index("loss")])
    cells = lines[number].rstrip("\n").split(",")
    cells[header.index("loss")] = "0.01"
    lines[number] = ",".join(cells) + "\n"
    measurements.write_text("".join(lines))
    check, result = reexecution_check(path)
    assert check.status == FAIL and result.exit_code == 1
    assert (f"measurements.csv:{number + 1}: loss at step 5: logged 0.01, re-executed "
            in str(check.problems[0]))


def test_reexecution_refuses_a_submission_that_is_not_the_one_that_ran(pytorch_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(NADAMW, other)
    with open(other / "submission_pytorch.py", "a") as f:
        f.write("\n# edited\n")
    check, _ = reexecution_check(pytorch_run, submission=other / "submission_pytorch.py")
    assert check.status == UNCERTIFIABLE
    assert "is not the one that ran" in check.summary
