"""`algoperf sweep` on a real Slurm cluster (one node, brought up by .ci/slurm-up): the small
grid of both rulesets as job arrays, one job cancelled mid-run with scancel, resumed, scored.

Skips, printing why, only when no cluster can start; with CI=true it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from sweep_grid import (
    ROOT,
    algoperf,
    check_grid,
    check_resumed_from_checkpoint,
    checkpointed_mid_run,
    plan_grid,
    slow_job,
    states,
    wait_until,
)

from algoperf.errors import UserError
from algoperf.sweep import ExecOptions, SlurmOptions, launch
from algoperf.sweep.execute import job_statuses, wait_for_slurm
from algoperf.sweep.job_records import read_attempts

SLURM_UP = ROOT / ".ci" / "slurm-up"


def _answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                          timeout=30)
    return done.returncode == 0 and any(s.strip().startswith(("idle", "mix", "alloc"))
                                        for s in done.stdout.splitlines())


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """A Slurm cluster that answers: the running one, or one .ci/slurm-up starts."""
    if _answers():
        return
    try:
        done = subprocess.run([str(SLURM_UP)], capture_output=True, text=True, timeout=600)
        output = (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        done, output = None, str(e)
    if done is not None and done.returncode == 0 and _answers():
        return
    reason = "no Slurm cluster could start: " + (output.splitlines()[-1] if output else "?")
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the Slurm tests must run)")
    pytest.skip(reason)


def slurm_run(plan, *extra: str) -> str:
    """`sweep run` as a Slurm array; returns the array job id."""
    done = algoperf("sweep", "run", str(plan.directory), "--executor", "slurm", "--runtime",
                    "host", *extra, check=True)
    assert "submitted Slurm array" in done.stdout
    return done.stdout.split("submitted Slurm array ")[1].split()[0]


def test_slurm_grid_survives_scancel_resumes_and_scores(slurm_cluster, tmp_path):
    external = plan_grid(tmp_path, "nadamw", "external")
    self_tuning = plan_grid(tmp_path, "nadamw_self", "self")
    victim = slow_job(external)

    array = slurm_run(external)
    self_array = slurm_run(self_tuning, "--partition", "debug", "--time", "10:00")
    wait_until(lambda: checkpointed_mid_run(external, victim), 180, "a mid-run checkpoint")
    (attempt,) = read_attempts(external.jobs_dir, victim.label)
    assert attempt.start["slurm_job"] == f"{array}_{victim.index}"
    subprocess.run(["scancel", attempt.start["slurm_job"]], check=True)

    wait_for_slurm(external, array, None, timeout=300)
    wait_for_slurm(self_tuning, self_array, None, timeout=300)
    after_cancel = states(external)
    assert after_cancel.pop(victim.index) == "interrupted"
    assert set(after_cancel.values()) == {"done"}
    status = json.loads(algoperf("sweep", "status", str(external.directory), "--json",
                                 check=True).stdout)
    assert not status["complete"] and status["scorable"]
    assert "provisional" in status["message"]

    # resume takes the executor from the last run and resubmits only the cancelled job.
    done = algoperf("sweep", "resume", str(external.directory), "--wait", check=True)
    assert "resume: 1 of 4 jobs on Slurm" in done.stdout
    assert "complete: all 4 trials ended" in done.stdout
    check_resumed_from_checkpoint(external, victim)
    attempts = read_attempts(external.jobs_dir, victim.label)
    assert len(attempts) == 2 and attempts[1].exit_code == 0
    log = (external.jobs_dir / "logs" / f"{victim.label}.log").read_text()
    assert log.count("=== algoperf sweep:") == 2  # one log per job, both attempts in it
    check_grid(external)
    check_grid(self_tuning)


def test_slurm_refuses_an_unknown_partition_and_writes_nothing(slurm_cluster, tmp_path):
    plan = plan_grid(tmp_path, "nadamw_self", "self")
    done = algoperf("sweep", "run", str(plan.directory), "--executor", "slurm", "--runtime",
                    "host", "--partition", "nosuchpartition")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: unknown Slurm partition 'nosuchpartition'")
    assert "debug" in done.stderr
    assert not plan.jobs_dir.exists()


def test_unreachable_controller_says_how_to_point_at_one(slurm_cluster, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=elsewhere\nSlurmctldHost=nowhere(127.0.0.1)\n"
                    "SlurmctldPort=9\nMessageTimeout=1\nNodeName=n1 CPUs=1\n"
                    "PartitionName=p Nodes=n1\n")
    plan = plan_grid(tmp_path, "nadamw_self", "self")
    options = ExecOptions(executor="slurm", runtime="host",
                          slurm=SlurmOptions(slurm_conf=str(conf)))
    with pytest.raises(UserError, match="no Slurm controller answers.*--slurm-conf"):
        launch(plan, plan.jobs, options, "run")
    assert not plan.jobs_dir.exists()
    statuses, warning = job_statuses(plan)
    assert warning is None and {s.state for s in statuses} == {"pending"}
