"""Several processes or devices: PyTorch under torchrun (2 gloo ranks on the CPU, through the
CLI), the launch decision for machines with several GPUs, and JAX with the batch sharded over
2 and 4 forced CPU devices (subprocesses: XLA_FLAGS must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from algoperf.distributed import LaunchPlan, ddp_launch_plan
from algoperf.errors import UserError
from algoperf.logs.events import read_events, verify_chain
from algoperf.logs.measurements import read_measurements

ROOT = Path(__file__).resolve().parent.parent
SEARCH_SPACE = ROOT / "submissions" / "nadamw" / "tuning_search_space.json"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 240


# The launch decision: a pure function of the GPU count and the environment.

def torchrun_env(world_size: int, rank: int = 0, local_world_size: int | None = None) -> dict:
    return {"LOCAL_RANK": str(rank), "RANK": str(rank), "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(local_world_size or world_size)}


def refusal(framework: str, num_gpus: int, env: dict, args=None) -> str:
    with pytest.raises(UserError) as error:
        ddp_launch_plan(framework, num_gpus, env, args)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_one_pytorch_process_on_several_gpus_is_refused_with_the_exact_torchrun_command():
    args = ["run", "--submission", "my sub/submission.py", "--workload", "mnist",
            "--framework", "pytorch", "--experiment-dir", "runs"]
    message = refusal("pytorch", 8, {}, args)
    assert message.startswith("8 CUDA GPUs are visible but this PyTorch run is one process")
    assert ("torchrun --standalone --nnodes=1 --nproc_per_node=8 -m algoperf run --submission "
            "'my sub/submission.py' --workload mnist --framework pytorch --experiment-dir runs"
            in message)
    assert "CUDA_VISIBLE_DEVICES=0" in message
    assert "--nproc_per_node=2" in refusal("pytorch", 2, {"PATH": "/bin"})


def test_one_gpu_no_gpu_or_jax_runs_as_one_process():
    assert ddp_launch_plan("pytorch", 0, {}) == LaunchPlan(world_size=1, rank=0)
    assert ddp_launch_plan("pytorch", 1, {}) == LaunchPlan()
    assert ddp_launch_plan("jax", 8, {}) == LaunchPlan()  # JAX shards over every device itself


def test_torchrun_ranks_come_from_its_environment():
    assert ddp_launch_plan("pytorch", 0, torchrun_env(2, rank=1)) == LaunchPlan(2, 1)
    assert ddp_launch_plan("pytorch", 8, torchrun_env(8, rank=3)) == LaunchPlan(8, 3)
    assert ddp_launch_plan("jax", 0, torchrun_env(1)) == LaunchPlan()


def test_torchrun_with_fewer_or_more_processes_than_gpus_is_refused():
    assert "use --nproc_per_node=8" in refusal("pytorch", 8, torchrun_env(2))
    assert "use --nproc_per_node=2" in refusal("pytorch", 2, torchrun_env(4))


def test_torchrun_for_jax_across_machines_or_without_world_size_is_refused():
    assert "without torchrun" in refusal("jax", 2, torchrun_env(2))
    assert "on one machine" in refusal("pytorch", 0, torchrun_env(4, local_world_size=2))
    assert "WORLD_SIZE is not" in refusal("pytorch", 0, {"LOCAL_RANK": "0"})
    assert "WORLD_SIZE must be an integer" in refusal("pytorch", 0, {"LOCAL_RANK": "0",
                                                                     "WORLD_SIZE": "two"})


def test_cli_refuses_a_jax_run_under_torchrun_in_one_line_before_writing_anything(tmp_path):
    env = {**os.environ, **torchrun_env(2)}
    done = subprocess.run(
        [sys.executable, "-m", "algoperf", "run", "--submission",
         str(ROOT / "submissions" / "nadamw" / "submission_jax.py"), "--workload", "digits",
         "--framework", "jax", "--tuning-search-space", str(SEARCH_SPACE),
         "--experiment-dir", str(tmp_path / "exp")],
        env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: torchrun started 2 processes")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "exp").exists()


# The ranks of a real gloo process group.

RANKS_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from algoperf import frameworks
from algoperf.distributed import ReportedOnRankZero, ranks_of
from algoperf.errors import UserError

frameworks.setup("pytorch")  # joins the gloo group: torchrun's variables are set
ranks = ranks_of("pytorch")
out = {"rank": ranks.rank, "world_size": ranks.world_size, "writer": ranks.writer}
if ranks.rank == 1:
    time.sleep(1.0)  # rank 1's clock reads later: every rank must get that reading
out["clock"] = ranks.clock()
out["clock_gap"] = time.perf_counter() - out["clock"]
out["from_writer"] = ranks.from_writer(lambda: f"rank {ranks.rank} decided")
out["any"] = ranks.any(ranks.rank == 1)

def outcome(fn):
    try:
        return ["ok", fn()]
    except ReportedOnRankZero as e:
        return ["reported on rank 0", str(e)]
    except UserError as e:
        return ["UserError", str(e)]

def fail_on(rank, message):
    def fn():
        if ranks.rank == rank:
            raise UserError(message)
        return "fine"
    return fn

out["agree"] = outcome(lambda: ranks.agree(fail_on(1, "rank 1 cannot read the data")))
out["writer_fails"] = outcome(lambda: ranks.from_writer(fail_on(0, "folder exists")))
out["same"] = outcome(lambda: ranks.check_same("the step", 30))
out["differ"] = outcome(lambda: ranks.check_same("the step", 30 + ranks.rank))
json.dump(out, sys.stdout)
"""


def run_ranks(script: str, port: int) -> list[dict]:
    processes = []
    for rank in range(2):
        env = {**os.environ, **ONE_THREAD, **torchrun_env(2, rank), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        processes.append(subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr
        outputs.append(json.loads(stdout))
    return outputs


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gloo_ranks_share_one_clock_rank_zeros_decisions_and_every_error():
    zero, one = run_ranks(RANKS_SCRIPT, free_port())
    assert (zero["writer"], one["writer"]) == (True, False)
    assert zero["world_size"] == one["world_size"] == 2
    assert zero["clock"] == one["clock"]  # the later reading, on both
    assert zero["clock_gap"] < 0.75  # rank 0 got rank 1's reading, 1 s after its own
    assert zero["from_writer"] == one["from_writer"] == "rank 0 decided"
    assert zero["any"] is one["any"] is True
    assert zero["agree"] == ["UserError", "rank 1: rank 1 cannot read the data"]
    assert one["agree"] == ["reported on rank 0", "rank 1 cannot read the data"]
    assert zero["writer_fails"] == ["UserError", "folder exists"]
    assert one["writer_fails"] == ["reported on rank 0", "folder exists"]
    assert zero["same"] == one["same"] == ["ok", None]
    for out in (zero, one):
        assert out["differ"][1].startswith("the ranks disagree about the step (rank 0: 30; "
                                           "rank 1: 31)")
    assert zero["differ"][0] == "UserError" and one["differ"][0] == "reported on rank 0"


# PyTorch under torchrun, through the CLI.

def wrapped_baseline(folder: Path, framework: str, body: str) -> Path:
    """The NAdamW baseline with ``update_params`` (or more) redefined by ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "submission.py"
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
        """) + textwrap.dedent(body))
    return path


# Every 5th step outlasts digits' 0.1 s eval period, the others are far shorter: evals fall on
# the same steps (1, 6, 11, 16, 21 and the last) however fast the machine is.
PACED = """
def update_params(**kwargs):
    if kwargs["global_step"] % 5 == 0 and kwargs["global_step"] > 0:
        time.sleep(0.35)
    return _base.update_params(**kwargs)
"""


def run_command(submission: Path, experiment_dir: Path, *extra: str) -> list[str]:
    return ["-m", "algoperf", "run", "--submission", str(submission), "--workload", "digits",
            "--framework", "pytorch", "--tuning-search-space", str(SEARCH_SPACE),
            "--experiment-dir", str(experiment_dir), "--experiment-name", "ddp", "--seed", "0",
            *extra]


def torchrun(args: list[str], log_dir: Path) -> subprocess.CompletedProcess:
    """2 gloo ranks; each rank's stdout and stderr go to files under ``log_dir``."""
    return subprocess.run([*TORCHRUN, "--log-dir", str(log_dir), "--redirects", "3", *args],
                          env={**os.environ, **ONE_THREAD}, capture_output=True, text=True,
                          timeout=TIMEOUT)


def rank_output(log_dir: Path, rank: int, stream: str) -> str:
    (path,) = log_dir.rglob(f"attempt_0/{rank}/{stream}.log")
    return path.read_text()


def files_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def event_types(trial_dir: Path) -> list[str]:
    """The events in order, without the hardware samples (taken every few wall-clock seconds)."""
    return [e["type"] for e in read_events(trial_dir / "events.jsonl")
            if e["type"] != "hardware_sample"]


def test_two_gloo_ranks_under_torchrun_write_one_set_of_logs_shaped_like_one_process(tmp_path):
    sub = wrapped_baseline(tmp_path / "sub", "pytorch", PACED)
    extra = ("--num-tuning-trials", "2", "--max-global-steps", "25")
    single = subprocess.run([sys.executable, *run_command(sub, tmp_path / "one", *extra)],
                            env={**os.environ, **ONE_THREAD}, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr
    done = torchrun(run_command(sub, tmp_path / "two", *extra), tmp_path / "ranks")
    assert done.returncode == 0, done.stderr[-3000:]  # torchrun: every rank exited 0
    assert "time to validation target" in rank_output(tmp_path / "ranks", 0, "stdout")
    assert rank_output(tmp_path / "ranks", 1, "stdout") == ""  # rank 1 prints nothing
    assert "error" not in rank_output(tmp_path / "ranks", 1, "stderr")

    one, two = tmp_path / "one" / "ddp", tmp_path / "two" / "ddp"
    assert files_of(two) == files_of(one)  # one set of files, the same ones
    for trial in ("trial_1", "trial_2"):
        a, b = (root / "study_0" / "digits_pytorch" / trial for root in (one, two))
        assert (b / "hparams.json").read_text() == (a / "hparams.json").read_text()
        assert verify_chain(b / "events.jsonl") == []
        # Evals follow the clock: each paced step forces one (its sleep outlasts digits' eval
        # period), a slow machine may add more. The rest of the event sequence is fixed.
        untimed = [[t for t in event_types(x) if t not in ("eval", "checkpoint")] for x in (a, b)]
        assert untimed[1] == untimed[0]
        assert event_types(b).count("eval") >= 6
        start_a, start_b = read_events(a / "events.jsonl")[0], read_events(b / "events.jsonl")[0]
        assert (start_a["data"]["processes"], start_b["data"]["processes"]) == (1, 2)
        assert start_b["data"]["seed"] == start_a["data"]["seed"]
        for name in ("eval_measurements.csv", "measurements.csv"):
            rows_a, rows_b = read_measurements(a / name), read_measurements(b / name)
            assert list(rows_b[0]) == list(rows_a[0])  # the same columns, in order
        # The same training: each rank took half of every batch, the gradients were averaged;
        # compared at the steps both runs evaluated (every paced step and the last).
        evals_a, evals_b = ({r["global_step"]: r for r in read_measurements(
            x / "eval_measurements.csv")} for x in (a, b))
        common = sorted(set(evals_a) & set(evals_b), key=int)
        assert len(common) >= 6 and common[-1] == "25", common
        for step in common:
            assert float(evals_b[step]["validation/loss"]) == pytest.approx(
                float(evals_a[step]["validation/loss"]), rel=1e-3)
        end = read_events(b / "events.jsonl")[-1]["data"]
        assert (end["status"], end["reason"], end["global_step"]) == ("completed", "max_steps", 25)


def test_a_stop_raised_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    sub = wrapped_baseline(tmp_path / "sub", "pytorch", """
        import torch.distributed as dist
        from algoperf import spec

        def update_params(**kwargs):
            result = _base.update_params(**kwargs)
            if dist.get_rank() == 1 and kwargs["global_step"] == 6:
                raise spec.TrainingCompleteError  # rank 1 alone decides to stop
            return result
        """)
    done = torchrun(run_command(sub, tmp_path / "exp", "--num-tuning-trials", "1",
                                "--max-global-steps", "40"), tmp_path / "ranks")
    assert done.returncode == 0, done.stderr[-3000:]
    trial = tmp_path / "exp" / "ddp" / "study_0" / "digits_pytorch" / "trial_1"
    end = read_events(trial / "events.jsonl")[-1]["data"]
    assert (end["status"], end["reason"], end["global_step"]) == (
        "completed", "training_complete", 7)
    assert read_measurements(trial / "eval_measurements.csv")[-1]["global_step"] == "7"


def kill_tree(process: subprocess.Popen) -> None:
    """kill -9 of torchrun and every rank it started, as a preemption does."""
    parent = psutil.Process(process.pid)
    for p in [*parent.children(recursive=True), parent]:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait()


def test_torchrun_run_killed_mid_trial_resumes_from_rank_zeros_checkpoint_on_every_rank(
        tmp_path):
    sub = wrapped_baseline(tmp_path / "sub", "pytorch", """
        def update_params(**kwargs):
            time.sleep(0.02)
            return _base.update_params(**kwargs)
        """)
    args = run_command(sub, tmp_path / "exp", "--num-tuning-trials", "1",
                       "--max-global-steps", "60")
    trial = tmp_path / "exp" / "ddp" / "study_0" / "digits_pytorch" / "trial_1"
    first = subprocess.Popen([*TORCHRUN, *args], env={**os.environ, **ONE_THREAD},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while not (trial / "events.jsonl").exists() or event_types(trial).count("checkpoint") < 2:
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoints appeared"
        time.sleep(0.05)
    kill_tree(first)
    killed_at = [e for e in read_events(trial / "events.jsonl") if e["type"] == "checkpoint"]

    done = torchrun([*args, "--resume"], tmp_path / "ranks")
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(trial / "events.jsonl")
    assert verify_chain(trial / "events.jsonl") == []
    (resume,) = [e["data"] for e in events if e["type"] == "resume"]
    assert resume["global_step"] >= killed_at[-1]["data"]["global_step"]
    assert events[-1]["data"]["global_step"] == 60 and events[-1]["data"]["status"] == "completed"
    steps = [int(r["global_step"]) for r in read_measurements(trial / "eval_measurements.csv")]
    assert steps == sorted(set(steps))  # no eval row twice
    assert (trial / "flags_1.json").exists() and (trial / "meta_data_1.json").exists()


# JAX on several devices, in one process.

SHARD_COUNTER = """
import jax

def update_params(**kwargs):
    workload = kwargs["workload"]
    if workload.metrics_logger is not None:
        params = jax.tree.leaves(kwargs["current_param_container"])[0]
        workload.metrics_logger.append_scalar_metrics({
            "batch_devices": len(kwargs["batch"]["inputs"].sharding.device_set),
            "batch_rows_per_device": kwargs["batch"]["inputs"].addressable_shards[0].data.shape[0],
            "param_devices": len(params.sharding.device_set)}, kwargs["global_step"])
    return _base.update_params(**kwargs)
"""


@pytest.mark.parametrize("num_devices", [2, 4])
def test_jax_run_shards_the_batch_over_every_local_device_and_logs_once(tmp_path, num_devices):
    sub = wrapped_baseline(tmp_path / "sub", "jax", SHARD_COUNTER)
    env = {**os.environ, **ONE_THREAD, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={num_devices}"}
    args = run_command(sub, tmp_path / "exp", "--num-tuning-trials", "1",
                       "--max-global-steps", "12")
    args[args.index("pytorch")] = "jax"
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    trial = tmp_path / "exp" / "ddp" / "study_0" / "digits_jax" / "trial_1"
    assert sorted(p.name for p in trial.iterdir()) == [
        "checkpoint_12", "eval_measurements.csv", "events.jsonl", "flags_0.json",
        "hparams.json", "measurements.csv", "meta_data_0.json"]
    events = read_events(trial / "events.jsonl")
    assert verify_chain(trial / "events.jsonl") == []
    types = [e["type"] for e in events]
    assert types.count("run_start") == 1 and types[-1] == "run_end" and types.count("run_end") == 1
    assert (events[0]["data"]["devices"], events[0]["data"]["processes"]) == (num_devices, 1)
    assert events[-1]["data"]["status"] == "completed"
    assert events[-1]["data"]["global_step"] == 12
    steps = [r for r in read_measurements(trial / "measurements.csv") if r["batch_devices"]]
    assert [int(r["global_step"]) for r in steps] == list(range(12))  # every step, once
    batch_size = events[0]["data"]["batch_size"]
    for row in steps:
        assert int(row["batch_devices"]) == int(row["param_devices"]) == num_devices
        assert int(row["batch_rows_per_device"]) == batch_size // num_devices
    evals = read_measurements(trial / "eval_measurements.csv")
    assert len(evals) == types.count("eval") >= 2
    assert [int(r["global_step"]) for r in evals] == sorted({int(r["global_step"]) for r in evals})
