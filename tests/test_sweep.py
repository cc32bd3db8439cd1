"""`algoperf sweep`: deterministic plans, job command lines, bad input, and the small grid on
the local executor (interrupted with Ctrl-C, resumed, scored). Slurm: test_sweep_slurm.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_grid import (
    MAX_STEPS,
    NADAMW,
    NADAMW_SELF,
    ROOT,
    SEARCH_SPACE,
    SLOW_LR,
    algoperf,
    check_grid,
    check_resumed_from_checkpoint,
    checkpointed_mid_run,
    evaluated_mid_run,
    plan_grid,
    popen_algoperf,
    slow_job,
    states,
    trial_events,
    wait_until,
)

from algoperf import __version__
from algoperf.errors import UserError
from algoperf.logs import events as ev
from algoperf.run_command import run as run_command
from algoperf.run_options import config_from_options, to_arguments
from algoperf.submission import JOB_ENVIRONMENT
from algoperf.sweep import ExecOptions, job_config, launch, load_plan, make_plan, write_plan
from algoperf.sweep.execute import job_statuses
from algoperf.sweep.launch import default_algoperf, docker_available, job_command
from algoperf.sweep.plan import PLAN_FILE, to_json
from algoperf.sweep.slurm import SlurmOptions, array_spec, sbatch_options
from algoperf.workloads import registry

SPACE = ROOT / "submissions" / "nadamw" / "tuning_search_space.json"


def small_plan(out: Path, **kwargs):
    return make_plan(out, NADAMW, workloads=("digits",), num_studies=2, num_trials=3, **kwargs)


def assert_one_line_error(done, text: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], done.stderr


# --- the plan -------------------------------------------------------------------------------


def test_plan_is_the_same_in_another_process_and_directory(tmp_path):
    here = small_plan(tmp_path / "a" / "nadamw")
    assert write_plan(here)
    done = algoperf("sweep", "plan", "--submission", str(NADAMW.parent), "--framework",
                    "pytorch", "--workloads", "digits", "--num-studies", "2", "--trials", "3",
                    "--seed", "0", "--out", str(tmp_path / "b" / "nadamw"))
    assert done.returncode == 0, done.stderr
    there = load_plan(tmp_path / "b" / "nadamw")
    assert there.plan_id == here.plan_id
    assert there.jobs == here.jobs
    # Same directory, same inputs: byte-identical, and planning again changes nothing.
    again = small_plan(tmp_path / "a" / "nadamw")
    assert to_json(again) == (tmp_path / "a" / "nadamw" / PLAN_FILE).read_text()
    assert write_plan(again) is False
    # Another master seed is another plan.
    assert small_plan(tmp_path / "c", seed=1).plan_id != here.plan_id


def test_plan_lists_the_hyperparameters_and_seeds_of_each_trial(tmp_path):
    plan = small_plan(tmp_path / "p")
    assert [(j.study, j.trial) for j in plan.jobs] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2),
                                                       (1, 3)]
    points = [tuple(j.hyperparameters.values()) for j in plan.jobs]
    assert len(set(points)) == 6  # studies draw disjoint Halton points
    assert len({j.seed for j in plan.jobs}) == 6
    assert list(plan.jobs[0].hyperparameters) == list(json.loads(SPACE.read_text()))


def test_a_plan_of_fewer_trials_lists_the_first_trials_of_a_larger_one(tmp_path):
    from algoperf.tuning import plan_trials

    def cells(plan):
        return {(j.study, j.trial): (j.seed, j.hyperparameters) for j in plan.jobs}

    two = make_plan(tmp_path / "two", NADAMW, workloads=("digits",), num_studies=2, num_trials=2)
    five = make_plan(tmp_path / "five", NADAMW, workloads=("digits",), num_studies=2,
                     num_trials=5)
    assert cells(two) == {cell: v for cell, v in cells(five).items() if cell[1] <= 2}
    # The same points as one `algoperf run` of the whole grid draws.
    whole = dataclasses.replace(job_config(five, five.jobs[0]), study=None,
                                hparam_start_index=None, hparam_end_index=None)
    drawn = plan_trials(whole, five.seed)
    assert {(k, i): hp._asdict() for k, trials in drawn.items() for i, hp in trials} == {
        cell: hp for cell, (_, hp) in cells(five).items()}


@pytest.mark.parametrize("rules,ruleset,jobs", [
    ("v0.5", "external", 14 * 5 * 5), ("v0.6", "external", 8 * 3 * 5),
    ("a100", "external", 9 * 3 * 5), ("v0.5", "self", 14 * 5), ("v0.6", "self", 8 * 3)])
def test_plan_defaults_follow_the_rules_version(tmp_path, rules, ruleset, jobs):
    submission = NADAMW if ruleset == "external" else NADAMW_SELF
    plan = make_plan(tmp_path / "p", submission, rules=rules, ruleset=ruleset)
    r = registry.get_rules(rules)
    assert len(plan.jobs) == jobs
    assert plan.workloads == (*r.base_workloads, *r.held_out_workloads)
    assert plan.num_studies == r.num_studies
    assert plan.num_trials == (r.num_trials if ruleset == "external" else 1)
    assert all(j.hyperparameters is None for j in plan.jobs) == (ruleset == "self")


def test_job_command_parses_back_to_the_job_config(tmp_path):
    for plan in (small_plan(tmp_path / "e", max_global_steps=7, save_checkpoints=False,
                            data_dir=tmp_path / "data"),
                 make_plan(tmp_path / "s", NADAMW_SELF, ruleset="self",
                           workloads=("digits", "mnist"), num_studies=2)):
        for job in plan.jobs:
            config = job_config(plan, job)
            context = run_command.make_context("run", to_arguments(config))
            # The default data dir is ~/data where the job runs, expanded there.
            expected = dataclasses.replace(config, data_dir=config.data_dir.expanduser())
            assert config_from_options(**context.params) == expected
    command = job_command(config, "docker", ["algoperf"], extra="--reference 'cpu dev'")
    assert command[:3] == ["algoperf", "docker", "run"]
    assert command[-2:] == ["--reference", "cpu dev"]


def test_plan_is_never_overwritten(tmp_path):
    out = tmp_path / "nadamw"
    write_plan(small_plan(out))
    before = (out / PLAN_FILE).read_bytes()
    with pytest.raises(UserError, match="already holds a different plan"):
        write_plan(small_plan(out, seed=5))
    assert (out / PLAN_FILE).read_bytes() == before
    results = tmp_path / "old"
    (results / "study_0" / "digits_pytorch" / "trial_1").mkdir(parents=True)
    with pytest.raises(UserError, match="holds results but no plan.json"):
        write_plan(small_plan(results))
    assert not (results / PLAN_FILE).exists()


def test_plan_of_another_version_or_edited_is_refused(tmp_path):
    out = tmp_path / "nadamw"
    write_plan(small_plan(out))
    doc = json.loads((out / PLAN_FILE).read_text())
    (out / PLAN_FILE).write_text(json.dumps({**doc, "algoperf_version": "0.5.0"}))
    with pytest.raises(UserError, match=f"made by algoperf 0.5.0, this is {__version__}"):
        load_plan(out)
    doc["jobs"][0]["seed"] += 1
    (out / PLAN_FILE).write_text(json.dumps(doc))
    with pytest.raises(UserError, match="was edited"):
        load_plan(out)


def test_bad_plan_inputs_are_one_line_errors(tmp_path):
    base = ["sweep", "plan", "--workloads", "digits", "--out", str(tmp_path / "x")]
    assert_one_line_error(algoperf(*base, "--submission", str(tmp_path / "nope.py")),
                          "does not exist")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "submission_jax.py").write_text(NADAMW.read_text())
    assert_one_line_error(algoperf(*base, "--submission", str(lonely)), "no search space")
    assert_one_line_error(algoperf(*base, "--submission", str(NADAMW), "--search-space",
                                   str(tmp_path / "missing.json")), "not found")
    assert_one_line_error(algoperf(*base, "--submission", str(NADAMW_SELF), "--ruleset",
                                   "self", "--search-space", str(SPACE)), "takes no")
    assert_one_line_error(algoperf(*base, "--submission", str(NADAMW), "--workloads",
                                   "digitz"), "Did you mean 'digits'")
    assert not (tmp_path / "x").exists()
    assert_one_line_error(algoperf("sweep", "status", str(tmp_path)), "no sweep plan")


def test_changed_submission_is_refused_before_any_job_runs(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission_pytorch.py").write_text(NADAMW.read_text())
    (folder / "tuning_search_space.json").write_text(SPACE.read_text())
    plan = make_plan(tmp_path / "sweep", folder, workloads=("digits",), num_studies=1,
                     num_trials=1)
    write_plan(plan)
    with open(folder / "submission_pytorch.py", "a") as f:
        f.write("\n# tuned after planning\n")
    with pytest.raises(UserError, match="changed since the plan was made"):
        launch(plan, plan.jobs, ExecOptions(runtime="host"), "run")
    assert not plan.jobs_dir.exists()


def test_sweep_runs_jobs_in_containers(tmp_path, cpu_image):
    image = cpu_image.id
    plan = plan_grid(tmp_path, "nadamw_self", "self")
    done = algoperf("sweep", "run", str(plan.directory), "--parallel", "2", "--job-args",
                    f"--image {image}")  # the container runtime is the default
    assert done.returncode == 0, done.stdout + done.stderr
    check_grid(plan)
    for job in plan.jobs:
        (start,) = [r["data"] for r in trial_events(plan, job) if r["type"] == ev.RUN_START]
        assert start["image_digest"].startswith("sha256:")  # it ran in the image
        assert " docker run " in job_log_head(plan, job)


def job_log_head(plan, job) -> str:
    return (plan.jobs_dir / "logs" / f"{job.label}.log").read_text()[:2000]


def test_container_runtime_says_how_to_get_it_when_missing(tmp_path):
    if docker_available():
        pytest.skip("`algoperf docker run` is installed; test_sweep_runs_jobs_in_containers "
                    "covers the container runtime")
    write_plan(small_plan(tmp_path / "nadamw"))
    assert_one_line_error(algoperf("sweep", "run", str(tmp_path / "nadamw")),
                          "--runtime host")


def test_no_slurm_reachable_says_how_to_point_at_one(tmp_path, monkeypatch):
    out = tmp_path / "nadamw"
    write_plan(small_plan(out))
    run = ["sweep", "run", str(out), "--executor", "slurm", "--runtime", "host"]
    assert_one_line_error(algoperf(*run, "--slurm-conf", str(tmp_path / "none.conf")),
                          "does not exist")
    done = subprocess_without_slurm(run)
    assert_one_line_error(done, "not installed here")
    assert not (out / "jobs").exists()


def subprocess_without_slurm(args: list[str]):
    import subprocess

    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([sys.executable, "-m", "algoperf", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_sbatch_options_pass_partition_gpus_time_and_extras_through(tmp_path):
    plan = small_plan(tmp_path / "p")
    args = sbatch_options(plan, [0, 1, 2, 4], SlurmOptions(
        partition="gpu", gpus_per_job=8, time_limit="24:00:00",
        sbatch_options=("--exclusive --mem=0", "--account='my team'")), parallel=3)
    assert "--array=0-2,4%3" in args
    assert {"--partition=gpu", "--gres=gpu:8", "--time=24:00:00", "--exclusive", "--mem=0",
            "--account=my team", "--open-mode=append"} <= set(args)
    assert f"--output={plan.jobs_dir / 'logs' / 'job_%4a.log'}" in args
    assert array_spec([3]) == "3" and array_spec([5, 1, 2]) == "1-2,5"


def test_job_that_fails_before_training_is_a_harness_failure_retried_on_resume(tmp_path):
    plan = make_plan(tmp_path / "nadamw", NADAMW, workloads=("digits",), num_studies=1,
                     num_trials=1, max_global_steps=3)
    write_plan(plan)
    broken = ExecOptions(runtime="host", job_args="--no-such-option")
    launched = launch(plan, plan.jobs, broken, "run")
    assert launched.exit_codes == {0: 2}
    (status,), _ = job_statuses(plan)
    assert status.state == "failed_harness" and status.rerun
    assert "before training" in status.detail and "no-such-option" in status.detail
    assert "no-such-option" in status.log.read_text()
    launch(plan, [status.job], dataclasses.replace(broken, job_args=""), "resume")
    (status,), _ = job_statuses(plan)
    assert status.state == "done" and len(status.attempts) == 2 and not status.rerun


# --- the grid on the local executor ---------------------------------------------------------


def test_local_grid_survives_ctrl_c_resumes_and_scores(tmp_path):
    external = plan_grid(tmp_path, "nadamw", "external")
    self_tuning = plan_grid(tmp_path, "nadamw_self", "self")
    victim = slow_job(external)

    sweep = popen_algoperf("sweep", "run", str(external.directory), "--runtime", "host",
                           "--parallel", "2")
    wait_until(lambda: checkpointed_mid_run(external, victim), 120, "a mid-run checkpoint")
    sweep.send_signal(signal.SIGINT)
    output, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, output
    assert "algoperf sweep resume" in output
    assert states(external)[victim.index] == "interrupted"

    done = algoperf("sweep", "resume", str(external.directory))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "complete: all 4 trials ended" in done.stdout
    check_resumed_from_checkpoint(external, victim)
    check_grid(external)

    # A finished sweep: resume runs nothing and touches no result.
    logs = {p: p.read_bytes() for p in external.directory.rglob("events.jsonl")}
    done = algoperf("sweep", "resume", str(external.directory))
    assert done.returncode == 0 and "nothing to resume" in done.stdout
    assert {p: p.read_bytes() for p in external.directory.rglob("events.jsonl")} == logs
    assert_one_line_error(algoperf("sweep", "run", str(external.directory)), "sweep resume")

    done = algoperf("sweep", "run", str(self_tuning.directory), "--runtime", "host",
                    "--parallel", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    check_grid(self_tuning)
    status = json.loads(algoperf("sweep", "status", str(self_tuning.directory), "--json",
                                 check=True).stdout)
    assert status["complete"] and status["counts"]["done"] == 2


def test_without_checkpoints_an_interrupted_job_starts_its_trial_again(tmp_path):
    space = tmp_path / "slow.json"
    space.write_text(json.dumps({**SEARCH_SPACE, "learning_rate": {"feasible_points": [SLOW_LR]}}))
    out = tmp_path / "nadamw"
    algoperf("sweep", "plan", "--submission", str(NADAMW), "--search-space", str(space),
             "--workloads", "digits", "--studies", "1", "--trials", "1", "--max-global-steps",
             str(MAX_STEPS), "--no-checkpoints", "--out", str(out), check=True)
    plan = load_plan(out)
    (job,) = plan.jobs
    sweep = popen_algoperf("sweep", "run", str(out), "--runtime", "host")
    wait_until(lambda: evaluated_mid_run(plan, job), 120, "a mid-run eval")
    sweep.send_signal(signal.SIGINT)
    assert sweep.wait(timeout=60) == 130
    assert states(plan) == {0: "interrupted"}
    algoperf("sweep", "resume", str(out), check=True)
    (status,), _ = job_statuses(plan)
    assert status.state == "done" and status.detail == "max_steps, restarted 1x"
    records = trial_events(plan, job)
    assert not [r for r in records if r["type"] in (ev.CHECKPOINT, ev.RESUME)]
    assert [r["type"] for r in records].count(ev.RUN_START) == 2
    assert records[-1]["type"] == ev.RUN_END and records[-1]["data"]["global_step"] == MAX_STEPS
    check_grid(plan, expect_score=False)


def test_jobs_start_python_in_safe_path_mode_so_the_current_folder_shadows_nothing(tmp_path):
    """A folder named like a package in the job's working folder (a checkout's `datasets/`
    beside Hugging Face's `datasets`) is never imported in its place: here a fake numpy."""
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("raise ImportError('shadowed numpy')\n")
    probe = ["-c", "import numpy, sys; print(numpy.__file__)"]
    plain = subprocess.run([sys.executable, *probe], cwd=tmp_path, capture_output=True, text=True)
    assert "shadowed numpy" in plain.stderr  # the hazard is real
    python = default_algoperf()[:-2]  # the interpreter and its flags, without -m algoperf
    for env in ({**os.environ}, {**os.environ, **JOB_ENVIRONMENT}):
        safe = subprocess.run([*python, *probe], cwd=tmp_path, capture_output=True, text=True,
                              env=env)
        assert safe.returncode == 0, safe.stderr
        assert str(tmp_path) not in safe.stdout
    bare = subprocess.run([sys.executable, *probe], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **JOB_ENVIRONMENT})
    assert bare.returncode == 0, bare.stderr  # the environment alone protects slurm and containers


def test_plan_options_have_the_names_of_run_and_the_old_spellings_still_work(tmp_path):
    new = algoperf("sweep", "plan", "--submission", str(NADAMW), "--tuning-search-space",
                   str(SPACE), "--tuning-ruleset", "external", "--workloads", "digits",
                   "--num-studies", "1", "--num-tuning-trials", "2", "--seed", "4",
                   "--no-save-checkpoints", "--out", str(tmp_path / "new" / "nadamw"))
    old = algoperf("sweep", "plan", "--submission", str(NADAMW), "--search-space", str(SPACE),
                   "--ruleset", "external", "--workloads", "digits", "--studies", "1",
                   "--trials", "2", "--seed", "4", "--no-checkpoints",
                   "--out", str(tmp_path / "old" / "nadamw"))
    assert new.returncode == 0 and old.returncode == 0, new.stderr + old.stderr
    assert (load_plan(tmp_path / "new" / "nadamw").jobs
            == load_plan(tmp_path / "old" / "nadamw").jobs)


def test_plan_without_a_seed_draws_one_and_prints_it(tmp_path):
    done = algoperf("sweep", "plan", "--submission", str(NADAMW), "--workloads", "digits",
                    "--num-studies", "1", "--trials", "1", "--out", str(tmp_path / "nadamw"))
    assert done.returncode == 0, done.stderr
    seed = load_plan(tmp_path / "nadamw").seed
    assert f"seed {seed} drawn at random (--seed {seed} " in done.stdout


def test_plan_defaults_to_the_implemented_workloads_of_the_rules_grid(tmp_path):
    done = algoperf("sweep", "plan", "--submission", str(NADAMW), "--num-studies", "1",
                    "--trials", "1", "--seed", "0", "--out", str(tmp_path / "nadamw"))
    rules = registry.get_rules(registry.DEFAULT_RULES)
    implemented = [w for w in (*rules.base_workloads, *rules.held_out_workloads)
                   if registry.get_workload(w).implemented]
    if implemented:
        assert done.returncode == 0, done.stderr
        assert list(load_plan(tmp_path / "nadamw").workloads) == implemented
    else:
        assert_one_line_error(done, "pass --workloads from those that are: ")
        assert "digits" in done.stderr and not (tmp_path / "nadamw").exists()


def test_piped_output_never_wraps_a_long_path(tmp_path):
    out = tmp_path / ("a_folder_name_long_enough_to_pass_the_pipe_width_" * 4) / "nadamw"
    done = algoperf("sweep", "plan", "--submission", str(NADAMW), "--workloads", "digits",
                    "--num-studies", "1", "--trials", "1", "--seed", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"plan: {out / 'plan.json'}\n" in done.stdout
