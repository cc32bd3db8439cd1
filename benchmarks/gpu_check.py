"""The GPU check: one short run on a GPU machine that says what works there (issue 19).

``benchmarks/gpu_check.sh`` calls this. It writes one JSON file with one entry per check, each
with ``status`` ``passed``, ``failed`` or ``skipped`` and a ``reason``; nothing that was not
checked is reported as passed:

- ``fingerprint``: the machine's NVML fingerprint (`algoperf.hardware.fingerprint`), in full;
- ``profiles``: its comparison with every bundled reference profile (passed: it matches);
- ``images``: whether the ``jax-cuda`` and ``pytorch-cuda`` images see every GPU NVML lists;
- ``step_time``: one training step per framework of ``--workload`` (default imagenet_resnet),
  AlgoPerf's NAdamW baseline batch over the reference's 4 GPUs per device, on a fixed random
  batch, against the A100 step times below;
- ``clock_sync``: the runner's clock waits for the device (`frameworks.syncer`): a submission
  whose ``update_params`` returns with seconds of device work still queued is charged that
  time, and the eval after it is not, against a control run without the work (the GPU
  version of tests/test_runner.py's CPU check).

On a GPU machine the framework work runs inside the CUDA images (``docker run --gpus all``,
the repository mounted read-only at /repo), each framework in its own image. ``--cpu`` is the
dry run CI exercises: the same workers run on the host's interpreter at per-device batch 1,
the image check is skipped (no GPU to see), the step-time comparison is skipped (not an A100;
the CPU figure is still recorded), and PyTorch's clock check runs but is skipped (PyTorch on
the CPU runs synchronously: there is no queued work to charge).

The worker modes (``--worker step|clock``) print one ``@@gpu_check {json}`` line; they are how
this script talks to an interpreter in an image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MESSAGE = "@@gpu_check "
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
FRAMEWORKS = ("jax", "pytorch")
IMAGES = {"jax": "algoperf:jax-cuda", "pytorch": "algoperf:pytorch-cuda"}
REFERENCE_GPUS = 4  # the A100 weight class (profile a100x4)
# A measured step slower than this multiple of the published one fails the comparison: the
# published runs used four GPUs (with their all-reduce), this one the GPUs it is given.
STEP_TIME_TOLERANCE = 1.25

# AlgoPerf's A100 step times in seconds per step, JAX and PyTorch (TF32), from the timing table
# of the pull request that moved AlgoPerf's workloads to the A100 weight class (mlcommons/
# algorithmic-efficiency #892, November 2025; that class's hardware is 4x A100-SXM4-40GB). The
# table names neither the machine nor the batch sizes of its runs: taken here to be that
# hardware and AlgoPerf's baseline batches.
A100_STEP_SECONDS = {
    "criteo1tb": {"jax": 0.835, "pytorch": 0.942},
    "fastmri": {"jax": 0.277, "pytorch": 0.376},
    "imagenet_resnet": {"jax": 0.259, "pytorch": 0.300},
    "imagenet_vit": {"jax": 0.386, "pytorch": 0.321},
    "librispeech_conformer": {"jax": 0.599, "pytorch": 0.418},
    "librispeech_deepspeech": {"jax": 0.981, "pytorch": 0.557},
    "finewebedu_lm": {"jax": 0.448, "pytorch": 0.409},
    "ogbg": {"jax": 0.220, "pytorch": 0.238},
    "wmt": {"jax": 0.139, "pytorch": 0.155},
}
# The workloads the step-time worker measures: one example's shape (NHWC) and the number of
# classes (its fixed batch is random images and labels), and AlgoPerf's NAdamW baseline global
# batch (submissions/nadamw's get_batch_size), which the reference splits over its 4 GPUs.
IMAGE_BATCH = {"imagenet_resnet": ((224, 224, 3), 1000), "imagenet_vit": ((224, 224, 3), 1000)}
REFERENCE_BATCH = {"imagenet_resnet": 1024, "imagenet_vit": 1024}


def check(status: str, reason: str, **data: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **data}


# Workers: run in the interpreter that has the framework (an image's, or the host's with --cpu).

def _load(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _syncer(framework: str):
    from algoperf import frameworks

    return frameworks.syncer(framework)


def _device_count(framework: str) -> tuple[int, str]:
    """Devices the step runs on, and their kind ('gpu' or 'cpu'). JAX uses every device it
    sees, as the reference's run did; PyTorch one (one process without DDP, so its step has no
    gradient all-reduce: AlgoPerf runs one process per GPU, each with the per-device batch)."""
    if framework == "jax":
        import jax

        return jax.local_device_count(), jax.default_backend()
    import torch

    return 1, "gpu" if torch.cuda.is_available() else "cpu"


def _precision(framework: str) -> dict[str, Any]:
    """The float32 matmul and convolution settings the step ran with (TF32 or not)."""
    if framework == "jax":
        import jax

        return {"jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
    import torch

    return {"torch_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch_cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def step_worker(framework: str, workload_name: str, per_device_batch: int, steps: int,
                seed: int = 0) -> dict[str, Any]:
    """Median seconds of one NAdamW training step of ``workload_name`` on a fixed batch."""
    import numpy as np

    from algoperf import frameworks
    from algoperf import random_utils as prng
    from algoperf.workloads import registry

    frameworks.setup(framework)
    workload = registry.import_workload(workload_name, framework)
    submission = _load(REPO / "submissions" / "nadamw_self_tuning"
                       / f"submission_{framework}.py")
    devices, kind = _device_count(framework)
    batch_size = per_device_batch * devices
    shape, classes = IMAGE_BATCH[workload_name]
    rs = np.random.RandomState(seed)
    batch = workload._to_framework_batch({
        "inputs": rs.standard_normal((batch_size, *shape)).astype(np.float32),
        "targets": rs.randint(0, classes, batch_size).astype(np.int32),
        "weights": np.ones(batch_size, np.float32)})
    sync = _syncer(framework)
    model_rng, opt_rng, step_rng = prng.split(prng.PRNGKey(seed), 3)
    params, model_state = workload.init_model_fn(model_rng)
    opt_state = submission.init_optimizer_state(workload, params, model_state, None, opt_rng)

    def step() -> float:
        nonlocal opt_state, params, model_state
        start = time.perf_counter()
        opt_state, params, model_state = submission.update_params(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=None, batch=batch, loss_type=workload.loss_type,
            optimizer_state=opt_state, eval_results=[], global_step=101, rng=step_rng)
        sync((params, model_state))
        return time.perf_counter() - start

    first = step()  # compiles
    times = sorted(step() for _ in range(steps))
    return {"framework": framework, "workload": workload_name, "device_kind": kind,
            "devices": devices, "per_device_batch": per_device_batch, "batch_size": batch_size,
            "first_step_s": first, "steps": steps, "step_s": times[len(times) // 2],
            "precision": _precision(framework)}


# The clock check's submission: a base that trains, then ``after_slow_work`` queued behind the
# parameters it returns. JAX's base is the self-tuning NAdamW baseline; PyTorch's is plain SGD,
# which keeps the check independent of the baselines' own code.
CLOCK_SUBMISSION = """
{base}
{slow_work}

def update_params(**kwargs):
    optimizer_state, params, model_state = _base_update(**kwargs)
    return optimizer_state, after_slow_work(params), model_state
"""
CLOCK_BASE = {"jax": """
import importlib.util as _u
_spec = _u.spec_from_file_location("_baseline", {baseline!r})
_base = _u.module_from_spec(_spec)
_spec.loader.exec_module(_base)
get_batch_size = _base.get_batch_size
init_optimizer_state = _base.init_optimizer_state
data_selection = _base.data_selection
prepare_for_eval = _base.prepare_for_eval
_base_update = _base.update_params
""", "pytorch": """
import torch
from algoperf import spec

def get_batch_size(workload_name):
    return 64

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {{"optimizer": torch.optim.SGD(model_params.parameters(), lr=0.05)}}

def _base_update(workload, current_param_container, model_state, batch, optimizer_state, rng,
                 **_):
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad(set_to_none=True)
    logits, model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch,
        model_state=model_state, mode=spec.ForwardPassMode.TRAIN, rng=rng,
        update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits,
                              mask_batch=batch.get("weights"))
    (losses["summed"] / losses["n_valid_examples"]).backward()
    optimizer.step()
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    return next(input_queue)
"""}
# Device work queued behind the parameters: ``size`` x ``size`` matrix products.
SLOW_WORK = {"jax": """
import jax
import jax.numpy as jnp
SIZE, REPEATS = {size}, {repeats}

@jax.jit
def _after(params):
    y = jax.lax.fori_loop(0, REPEATS, lambda _, y: jnp.tanh(y @ y),
                          jnp.full((SIZE, SIZE), 1e-3))
    return jax.tree.map(lambda p: p + 0.0 * y[0, 0], params)

def after_slow_work(params):
    return _after(params)

after_slow_work(jnp.zeros(())).block_until_ready()  # compiled at import, outside the clock
""", "pytorch": """
import torch
SIZE, REPEATS = {size}, {repeats}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU: the --cpu dry run

def after_slow_work(params):
    y = torch.full((SIZE, SIZE), 1e-3, device=DEVICE)
    for _ in range(REPEATS):
        y = torch.tanh(y @ y)
    with torch.no_grad():
        for p in params.parameters():
            p.add_(0.0 * y[0, 0])
    return params

after_slow_work(torch.nn.Linear(1, 1).to(DEVICE))
"""}


def clock_worker(framework: str, size: int, work_seconds: float,
                 workdir: Path) -> dict[str, Any]:
    """One digits step whose update leaves about ``work_seconds`` of device work queued, run
    by our runner: how much of that work the submission's and the next eval's time hold."""
    from algoperf.logs.measurements import read_measurements
    from algoperf.runner import RunConfig, run

    sub = workdir / "clock_sub" / "submission.py"
    sub.parent.mkdir(parents=True, exist_ok=True)
    baseline = REPO / "submissions" / "nadamw_self_tuning" / f"submission_{framework}.py"
    repeats, timing = 8, (0.0, 0.0)
    for _ in range(3):  # calibrate the number of matrix products to the wanted duration
        sub.write_text(CLOCK_SUBMISSION.format(
            base=CLOCK_BASE[framework].format(baseline=str(baseline)),
            slow_work=SLOW_WORK[framework].format(size=size, repeats=repeats)))
        timing = _time_slow_work(_load(sub), framework)
        if timing[1] >= 0.8 * work_seconds:
            break
        repeats = max(repeats + 1, int(repeats * work_seconds / max(timing[1], 1e-3)))
    dispatched, duration = timing

    def one_step(submission: Path, name: str) -> tuple[float, float, str]:
        config = RunConfig(submission_path=submission, workload="digits", framework=framework,
                           experiment_dir=workdir / "exp", experiment_name=name,
                           ruleset="self", seed=0, max_global_steps=1, save_checkpoints=False)
        (result,) = run(config)
        last = read_measurements(result.trial_dir / "eval_measurements.csv")[-1]
        return (result.accumulated_submission_time, float(last["accumulated_eval_time"]),
                result.status)

    # The base alone first: what the eval costs without queued work on this machine.
    control = sub.with_name("control.py")
    control.write_text(CLOCK_BASE[framework].format(baseline=str(baseline))
                       + "\nupdate_params = _base_update\n")
    _, control_eval, _ = one_step(control, "control")
    submission_time, eval_time, status = one_step(sub, "clock")
    return {"framework": framework, "matmul_size": size, "matmuls": repeats,
            "dispatch_s": dispatched, "work_s": duration, "submission_time_s": submission_time,
            "eval_time_s": eval_time, "control_eval_time_s": control_eval,
            "trial_status": status}


def _time_slow_work(slow, framework: str) -> tuple[float, float]:
    """Seconds until the slow work's call returns, and until the device has finished it."""
    sync = _syncer(framework)
    probe = _probe_params(framework)
    sync(slow.after_slow_work(probe))  # warm
    start = time.perf_counter()
    pending = slow.after_slow_work(probe)
    dispatched = time.perf_counter() - start
    sync(pending)
    return dispatched, time.perf_counter() - start


def _probe_params(framework: str):
    if framework == "jax":
        import jax.numpy as jnp

        return jnp.zeros(())
    import torch

    return torch.nn.Linear(1, 1).to("cuda" if torch.cuda.is_available() else "cpu")


def clock_verdict(r: dict[str, Any]) -> dict[str, Any]:
    """Passed when the queued work was charged to the submission (at least 0.8 of it, as in
    tests/test_runner.py's CPU check) and the eval after it took less than half of it more
    than the same eval without the work (the control run)."""
    if r["dispatch_s"] >= r["work_s"] / 4:
        return check(FAILED, f"the slow work did not dispatch asynchronously (returned after "
                     f"{r['dispatch_s']:.3f} s of {r['work_s']:.3f} s): nothing was checked",
                     **r)
    charged = r["submission_time_s"] >= 0.8 * r["work_s"]
    eval_extra = r["eval_time_s"] - r["control_eval_time_s"]
    if charged and eval_extra < 0.5 * r["work_s"]:
        return check(PASSED, "queued device work was charged to the submission", **r)
    return check(FAILED, f"submission time {r['submission_time_s']:.3f} s and eval time "
                 f"{eval_extra:+.3f} s over the control for {r['work_s']:.3f} s of queued "
                 "work: the clock did not wait for the device", **r)


# The orchestrator: runs on the host, starts the workers, writes the JSON.

def fingerprint_checks(cpu: bool) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The fingerprint, its comparison with every bundled profile, and NVML's GPU count."""
    from algoperf.hardware.fingerprint import take_fingerprint
    from algoperf.hardware.reference_profiles import compare_with, profile_names

    fp = take_fingerprint()
    gpus = len(fp.gpus)
    if fp.nvml_problem is not None:
        status = SKIPPED if cpu else FAILED
        fingerprint = check(status, f"NVML: {fp.nvml_problem[1]}", data=fp.to_json())
    else:
        fingerprint = check(PASSED, f"NVML read {gpus} GPU(s)", data=fp.to_json())
    profiles = {}
    for name in profile_names():
        ref = compare_with(name, fingerprint=fp)
        mismatches = ref.mismatches
        profiles[name] = check(
            PASSED if ref.certifiable else FAILED,
            "matches every enforced field" if ref.certifiable else
            f"{len(mismatches)} enforced field(s) differ: "
            + ", ".join(d.field for d in mismatches[:6]) + (" ..." if len(mismatches) > 6
                                                            else ""),
            differences=[d.to_json() for d in ref.differences])
    return fingerprint, profiles, gpus


def run_worker(args: list[str], framework: str, cpu: bool,
               deadline: float) -> dict[str, Any]:
    """Runs this file as a worker: in the framework's CUDA image, or on the host with --cpu;
    it must end by ``deadline`` (a `time.monotonic` value, the whole check's time budget)."""
    timeout = deadline - time.monotonic()
    if timeout < 20:
        raise RuntimeError("not started: the check's time budget (--budget-seconds) is spent")
    worker = ["benchmarks/gpu_check.py", *args]
    if cpu:
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, *worker]
    else:
        missing = _missing_image(IMAGES[framework])
        if missing:
            raise RuntimeError(missing)
        env = dict(os.environ)
        cmd = ["docker", "run", "--rm", "--gpus", "all", "--ipc", "private", "--shm-size",
               "2g", "-v", f"{REPO}:/repo:ro", "-w", "/repo", "--entrypoint",
               "/opt/algoperf/bin/python", IMAGES[framework], *worker]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(MESSAGE):
            return json.loads(line[len(MESSAGE):])
    raise RuntimeError(f"worker exited {proc.returncode}: {_last_lines(proc)}")


def _last_lines(proc: subprocess.CompletedProcess) -> str:
    """The end of a process's error output, without blank lines and docker's usage hint."""
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines()
             if line.strip() and not line.startswith(("Run 'docker", "See 'docker"))]
    return " | ".join(lines[-3:]) or "no output"


def _missing_image(image: str) -> str | None:
    """Why ``image`` cannot be started here, or None when the engine has it."""
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if proc.returncode != 0:
        variant = image.partition(":")[2]
        return (f"{image} is not on the engine: build it with `algoperf docker build "
                f"--variant {variant}` (docs/containers.md)")
    return None


IMAGE_PROBE = {
    "jax": "import jax; print(jax.default_backend(), jax.local_device_count())",
    "pytorch": "import torch; print('gpu' if torch.cuda.is_available() else 'cpu', "
               "torch.cuda.device_count())",
}


def image_checks(cpu: bool, nvml_gpus: int) -> dict[str, Any]:
    """Whether each CUDA image's framework sees every GPU NVML lists."""
    if cpu:
        return {fw: check(SKIPPED, "--cpu: no GPU to see; the images were not started")
                for fw in FRAMEWORKS}
    results = {}
    for fw, image in IMAGES.items():
        missing = _missing_image(image)
        if missing:
            results[fw] = check(FAILED, missing, image=image)
            continue
        try:
            proc = subprocess.run(["docker", "run", "--rm", "--gpus", "all", "--entrypoint",
                                   "/opt/algoperf/bin/python", image, "-c", IMAGE_PROBE[fw]],
                                  capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            results[fw] = check(FAILED, f"{image}: no answer within 180 s", image=image)
            continue
        out = proc.stdout.split()
        if proc.returncode != 0 or len(out) != 2:
            results[fw] = check(FAILED, f"{image}: exit {proc.returncode}: "
                                f"{_last_lines(proc)}", image=image)
            continue
        kind, count = out[0], int(out[1])
        ok = kind in ("gpu", "cuda") and count == nvml_gpus > 0
        results[fw] = check(PASSED if ok else FAILED,
                            f"{image} sees {count} {kind} device(s); NVML lists {nvml_gpus}",
                            image=image, backend=kind, devices=count)
    return results


def step_checks(cpu: bool, workload: str, steps: int, on_a100: bool,
                deadline: float) -> dict[str, Any]:
    """Each framework's step time at the reference per-device batch (1 with --cpu)."""
    per_device = 1 if cpu else REFERENCE_BATCH[workload] // REFERENCE_GPUS
    results = {}
    for fw in FRAMEWORKS:
        published = A100_STEP_SECONDS[workload][fw]
        try:
            r = run_worker(["--worker", "step", "--framework", fw, "--workload", workload,
                            "--per-device-batch", str(per_device), "--steps", str(steps)],
                           fw, cpu, deadline)
        except RuntimeError as e:
            results[fw] = check(FAILED, f"step-time worker: {e}", published_a100_s=published)
            continue
        r.update(published_a100_s=published, ratio=r["step_s"] / published)
        if cpu:
            results[fw] = check(SKIPPED, f"--cpu: measured on the CPU at per-device batch "
                                f"{per_device}, not comparable with the A100 figure", **r)
        elif r["device_kind"] not in ("gpu", "cuda"):
            results[fw] = check(FAILED, f"ran on {r['device_kind']}, not on a GPU", **r)
        elif not on_a100:
            results[fw] = check(SKIPPED, "this machine is not the a100x4 reference: the "
                                "ratio to the A100 figure is recorded, not judged", **r)
        else:
            ok = r["ratio"] <= STEP_TIME_TOLERANCE
            results[fw] = check(PASSED if ok else FAILED,
                                f"{r['step_s']:.3f} s/step against AlgoPerf's {published} "
                                f"(ratio {r['ratio']:.2f}, limit {STEP_TIME_TOLERANCE})", **r)
    return results


def clock_checks(cpu: bool, deadline: float) -> dict[str, Any]:
    results = {}
    for fw in FRAMEWORKS:
        size, seconds = (800, 1.5) if cpu else (8192, 3.0)
        try:
            r = run_worker(["--worker", "clock", "--framework", fw, "--size", str(size),
                            "--work-seconds", str(seconds)], fw, cpu, deadline)
        except RuntimeError as e:
            results[fw] = check(FAILED, f"clock worker: {e}")
            continue
        results[fw] = clock_verdict(r)
        if cpu and fw == "pytorch" and r["dispatch_s"] >= r["work_s"] / 4:
            results[fw] = check(SKIPPED, "--cpu: PyTorch on the CPU runs synchronously, so no "
                                "work was left queued for the clock to wait for (the runner "
                                f"ran the check's submissions: trial {r['trial_status']})", **r)
    return results


def summarise(report: dict[str, Any]) -> dict[str, int]:
    counts = {PASSED: 0, FAILED: 0, SKIPPED: 0}

    def visit(node: Any) -> None:
        if isinstance(node, dict) and "status" in node and "reason" in node:
            counts[node["status"]] += 1
        elif isinstance(node, dict):
            for value in node.values():
                visit(value)

    for key in ("fingerprint", "images", "step_time", "clock_sync"):
        visit(report["checks"][key])
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on a CPU machine")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--workload", default="imagenet_resnet", choices=sorted(IMAGE_BATCH))
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per framework (default 20; 1 with --cpu)")
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="time for the framework workers in all (default 450; 900 with "
                             "--cpu); a worker that would start after it is reported failed")
    parser.add_argument("--worker", choices=("step", "clock"), help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--per-device-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            if args.worker == "step":
                out = step_worker(args.framework, args.workload, args.per_device_batch,
                                  args.steps)
            else:
                out = clock_worker(args.framework, args.size, args.work_seconds, Path(tmp))
        sys.stdout.write(MESSAGE + json.dumps(out) + "\n")
        return 0

    started = time.perf_counter()
    steps = args.steps or (1 if args.cpu else 20)
    deadline = time.monotonic() + (args.budget_seconds or (900 if args.cpu else 450))
    fingerprint, profiles, gpus = fingerprint_checks(args.cpu)
    on_a100 = profiles.get("a100x4", {}).get("status") == PASSED
    report = {
        "schema": 1, "mode": "cpu" if args.cpu else "gpu",
        "host": platform.node(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime()),
        "checks": {
            "fingerprint": fingerprint, "profiles": profiles,
            "images": image_checks(args.cpu, gpus),
            "step_time": step_checks(args.cpu, args.workload, steps, on_a100, deadline),
            "clock_sync": clock_checks(args.cpu, deadline),
        },
    }
    report["elapsed_s"] = time.perf_counter() - started
    report["summary"] = summarise(report)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    s = report["summary"]
    print(f"gpu_check mode={report['mode']} passed={s[PASSED]} failed={s[FAILED]} "
          f"skipped={s[SKIPPED]} elapsed_s={report['elapsed_s']:.0f} -> {args.output}")
    return 1 if s[FAILED] else 0


if __name__ == "__main__":
    sys.exit(main())
