"""A sweep never loses a healthy trial: parallel container jobs of one study keep their write
access to the end, and a job that failed through the harness or the machine (a real signal,
a real file-size limit) is told apart from a submission's failure, and only it runs again on
`sweep resume`. Real sweeps, a real Docker engine for the container cases."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from sweep_grid import (
    NADAMW,
    NADAMW_SELF,
    SEARCH_SPACE,
    SLOW_LR,
    algoperf,
    check_grid,
    checkpointed_mid_run,
    popen_algoperf,
    trial_events,
    wait_until,
)

from algoperf.sweep import ExecOptions, Plan, launch, load_plan
from algoperf.sweep.execute import job_statuses

RUN_DIR_LABEL = "org.algoperf.run-dir"


def plan(tmp_path: Path, name: str, *, trials: int, steps: int, space: dict | None = None,
         submission: Path = NADAMW, seed: int = 0) -> Plan:
    """A digits sweep of one study through the CLI (self-tuning for ``space=None``)."""
    out = tmp_path / name
    args = ["sweep", "plan", "--submission", str(submission), "--workloads", "digits",
            "--studies", "1", "--max-global-steps", str(steps), "--seed", str(seed),
            "--out", str(out)]
    if space is None:
        args += ["--ruleset", "self"]
    else:
        path = tmp_path / f"{name}_space.json"
        path.write_text(json.dumps(space))
        args += ["--search-space", str(path), "--trials", str(trials)]
    algoperf(*args, check=True)
    return load_plan(out)


def with_update_params(folder: Path, before: str, base: Path = NADAMW) -> Path:
    """A copy of the ``base`` submission whose update_params runs ``before`` first (with the
    call's ``kwargs``)."""
    folder.mkdir()
    body = textwrap.indent(textwrap.dedent(before).strip(), "    ")
    path = folder / "submission_pytorch.py"
    path.write_text(base.read_text() + textwrap.dedent("""

        import functools as _functools
        import time as _time

        _update_params = update_params


        @_functools.wraps(_update_params)
        def update_params(*args, **kwargs):
        {body}
            return _update_params(*args, **kwargs)
        """).replace("{body}", body))
    return path


def statuses(plan: Plan) -> dict:
    found, warning = job_statuses(plan)
    assert warning is None
    return {s.job.index: s for s in found}


# --- parallel container jobs of one study ---------------------------------------------------


def test_parallel_container_jobs_of_one_study_complete_every_trial(tmp_path, cpu_image):
    """Sibling trials of one study, two at a time in containers: each job's end (handing its
    folders back to the caller) must not take write access away from the sibling still
    training. Trials of a sweep differ in length; here the slow learning rate's take 0.2 s
    more a step, and each grid's first two jobs (started together) differ. Three grids, as
    the race showed in three of four."""
    space = {**SEARCH_SPACE, "learning_rate": {"feasible_points": [0.003, 0.001]}}
    paced = with_update_params(tmp_path / "paced", """
        if kwargs["hyperparameters"].learning_rate < 0.002:
            _time.sleep(0.2)
        """)
    for grid, seed in enumerate((0, 3, 7)):
        sweep = plan(tmp_path, f"grid{grid}", trials=4, steps=25, space=space,
                     submission=paced, seed=seed)
        first, second = (j.hyperparameters["learning_rate"] for j in sweep.jobs[:2])
        assert first != second, "the grid needs sibling trials of different lengths"
        done = algoperf("sweep", "run", str(sweep.directory), "--parallel", "2",
                        "--job-args", f"--image {cpu_image.id}")
        assert done.returncode == 0, f"grid {grid}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
        check_grid(sweep, expect_score=False)  # every trial done, once, as planned
        for path in [sweep.directory, *sweep.directory.rglob("*")]:
            assert path.stat().st_uid == os.getuid(), f"{path} does not belong to the caller"


def test_killed_container_is_a_harness_failure_and_resume_continues_it(tmp_path, client,
                                                                        cpu_image):
    # 20 ms a step, so the trial is still training when the test kills it on any machine.
    submission = with_update_params(tmp_path / "slow", """
        if kwargs["global_step"] > 0:
            _time.sleep(0.02)
        """)
    space = {**SEARCH_SPACE, "learning_rate": {"feasible_points": [SLOW_LR]}}  # no target
    sweep = plan(tmp_path, "nadamw", trials=1, steps=150, space=space, submission=submission)
    (job,) = sweep.jobs
    run = popen_algoperf("sweep", "run", str(sweep.directory), "--job-args",
                         f"--image {cpu_image.id}")
    wait_until(lambda: run.poll() is not None or checkpointed_mid_run(sweep, job), 300,
               "a mid-run checkpoint")
    assert run.poll() is None, run.communicate()[0]
    (container,) = client.containers.list(
        filters={"label": f"{RUN_DIR_LABEL}={sweep.directory}"})
    container.kill(signal="SIGKILL")  # as the kernel's OOM killer would
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 1, output

    status = statuses(sweep)[job.index]
    assert status.state == "failed_harness" and status.rerun, (status.state, status.detail)
    assert status.detail.startswith("killed by SIGKILL (exit 137) at step"), status.detail
    shown = json.loads(algoperf("sweep", "status", str(sweep.directory), "--json",
                                check=True).stdout)
    assert shown["jobs"][0]["state"] == "failed_harness"
    assert shown["counts"]["failed_harness"] == 1 and not shown["complete"]

    done = algoperf("sweep", "resume", str(sweep.directory))  # options of the last run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "resume: 1 of 1 jobs" in done.stdout
    records = trial_events(sweep, job)
    (resumed,) = [r["data"] for r in records if r["type"] == "resume"]  # from its checkpoint
    assert resumed["global_step"] >= 20 and resumed["preemption_count"] == 1
    (end,) = [r["data"] for r in records if r["type"] == "run_end"]
    assert end["status"] == "completed" and end["global_step"] > resumed["global_step"]
    check_grid(sweep, expect_score=False)


# --- submission failures and harness failures, on the host -----------------------------------


def test_submission_that_raises_is_a_submission_failure_and_never_rerun(tmp_path):
    submission = with_update_params(tmp_path / "raises", """
        if kwargs["global_step"] == 5:
            raise RuntimeError("the submission gave up")
        """, base=NADAMW_SELF)
    sweep = plan(tmp_path, "raises_sweep", trials=1, steps=20, submission=submission)
    done = algoperf("sweep", "run", str(sweep.directory), "--runtime", "host")
    assert done.returncode == 1, done.stdout + done.stderr  # a failed job fails the command

    (status,) = statuses(sweep).values()
    assert status.state == "failed_submission" and not status.rerun, status.detail
    assert status.detail.startswith("trial failed: RuntimeError at submission_pytorch.py:")
    assert "the submission gave up" in status.detail
    assert status.finished  # it ended (scored as infinite time), so the grid is complete
    done = algoperf("sweep", "resume", str(sweep.directory), check=True)
    assert "nothing to resume: 1 of 1 trials ended" in done.stdout
    assert len(statuses(sweep)[0].attempts) == 1


def test_full_disk_is_a_harness_failure_and_resume_reruns_it(tmp_path):
    """A file-size limit below the size of a checkpoint: the harness cannot write the trial's
    first checkpoint (EFBIG, as a full disk gives ENOSPC). The trial is not failed, it did not
    end: resume, without the limit, runs it to its end."""
    sweep = plan(tmp_path, "nadamw", trials=1, steps=30, submission=NADAMW_SELF)
    (job,) = sweep.jobs
    limited = (sys.executable, "-c",
               "import os, resource, sys; limit = 256 * 1024; "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
               "os.execv(sys.executable, [sys.executable, '-m', 'algoperf', *sys.argv[1:]])")
    launched = launch(sweep, sweep.jobs, ExecOptions(runtime="host", algoperf=limited), "run")
    assert launched.exit_codes == {0: 2}

    status = statuses(sweep)[job.index]
    assert status.state == "failed_harness" and status.rerun, (status.state, status.detail)
    assert "File too large" in status.detail and "at step 1" in status.detail, status.detail
    assert not status.finished
    (shown,) = json.loads(algoperf("sweep", "status", str(sweep.directory), "--json",
                                   check=True).stdout)["jobs"]
    assert shown["state"] == "failed_harness" and "File too large" in shown["detail"]

    done = algoperf("sweep", "resume", str(sweep.directory), "--algoperf",
                    f"{sys.executable} -m algoperf")
    assert done.returncode == 0, done.stdout + done.stderr
    status = statuses(sweep)[job.index]
    assert status.state == "done" and status.detail == "max_steps, restarted 1x", status.detail
    kinds = [(r["type"], r["data"].get("cause")) for r in trial_events(sweep, job)
             if r["type"] in ("run_start", "error", "run_end")]
    assert kinds == [("run_start", None), ("error", "harness"), ("run_start", None),
                     ("run_end", None)]
    assert trial_events(sweep, job)[-1]["data"]["global_step"] == 30


def test_os_error_in_the_harness_is_its_failure_even_when_the_submission_called_it(tmp_path):
    """The race's error: a submission logs through the workload's metrics logger and the
    harness cannot write measurements.csv. The innermost frame that is the submission's or
    algoperf's decides: algoperf's here, the submission's when it opens a file itself."""
    import importlib.util

    from algoperf.logs.measurements import MetricLogger
    from algoperf.runner import _harness_failure
    from algoperf.submission import load_submission

    submission = load_submission(with_update_params(tmp_path / "sub", "pass", NADAMW_SELF),
                                 "pytorch")
    helper = tmp_path / "sub" / "helper.py"
    helper.write_text("def log(logger):\n    logger.append_scalar_metrics({'loss': 1.0}, 2)\n\n"
                      "def read(path):\n    return open(path).read()\n")
    spec = importlib.util.spec_from_file_location("helper", helper)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    logger = MetricLogger(tmp_path / "trial_1")
    logger.append_scalar_metrics({"loss": 2.0}, 1)
    (tmp_path / "trial_1" / "measurements.csv").unlink()
    (tmp_path / "trial_1" / "measurements.csv").mkdir()  # no longer writable as a file
    with pytest.raises(IsADirectoryError) as harness:
        module.log(logger)
    assert _harness_failure(harness.value, submission)
    with pytest.raises(FileNotFoundError) as own:
        module.read(tmp_path / "missing.txt")
    assert not _harness_failure(own.value, submission)
