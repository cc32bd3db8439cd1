"""Workload step time: one training step of our workloads against AlgoPerf's own workload code.

For every implemented workload (``algoperf.workloads.registry.implemented()``) whose base
workload has a counterpart in AlgoPerf's code (listed in its ``algoperf/workloads/workloads.py``)
and each framework, the median time of one training step on our workload object against the
same on AlgoPerf's. Our dev workloads ``digits`` and ``digits_silu`` have no AlgoPerf
counterpart and are skipped (the output says so), as are variants.

A training step is identical on both sides: one ``update_params`` of AlgoPerf's own NAdamW
baseline (``algorithms/baselines/external_tuning/<framework>_nadamw_full_budget.py`` of its
checkout, loaded unmodified in both interpreters; our API is AlgoPerf v0.6's, so it runs
against our workload objects too), with the first point of that folder's
``tuning_search_space.json`` as hyperparameters, against a fixed batch of ``--batch-size``
examples. The batch is built in numpy from one seed (random normal inputs of the workload's
shape, random labels) and converted to each framework's tensors the way that side's own input
pipeline converts its batches: ours by the workload's ``_to_framework_batch`` (inputs, int
labels, float weights of ones), AlgoPerf's as its training pipeline yields them (JAX: inputs
and labels placed with the batch-dim sharding, no weights; PyTorch: NCHW float inputs, int64
labels, and for MNIST its boolean weights). Input pipelines are bypassed: this measures model,
loss and optimizer update, nothing that reads or augments data. ``global_step`` is 101, past
the PyTorch baseline's per-step loss logging of steps 1..100 (its logger is not attached).

Each side runs in its own interpreter -- AlgoPerf's package is also named ``algoperf``, so it
cannot share a process with ours -- as a worker driven by a small script string that only
calls that side's functions (``ALGOPERF_DRIVER`` / ``OUR_DRIVER``, the common step loop in
``STEP_LOOP``). A worker builds the workload, model, optimizer state and batch, takes one
step (timed: the first-step/compile time, printed separately), ``--warmup`` more steps, and
then runs blocks of steps on request, syncing the device at the end of each block (JAX:
``block_until_ready``). Workers are started one after the other, so compilations do not
overlap, and then stay alive: the benchmark asks each side in turn for a block of the same
number of steps (``--block-seconds`` of AlgoPerf's step time), rotating the order every
repeat, so the sides are interleaved over the ``--repeats`` rounds on this shared, noisy
machine while the waiting side sits idle. A side's step time is the median over its blocks of
(block time / steps); the ratio is ours / AlgoPerf's, so <= 1.0 means ours is no slower.
With ``--processes K`` each side runs K workers, all interleaved, and a side's median pools
their blocks: identical workers of ResNet-50 in PyTorch differ by up to 6% from one process to
another (memory placement, not code), more than the difference being measured.
The table also gives the ratio of the fastest blocks, ``(min)``, and of the median CPU time
per step of each worker process, ``(cpu)``: with one PyTorch thread the latter is the step's
compute without the time the process waited for a core, so it holds still where other jobs
load the machine and the wall-clock medians do not (in JAX it sums XLA's threads).
(AlgoPerf's JAX CIFAR ``init_model_fn`` returns the parameters as its model state, so its
first step creates the batch-norm statistics and its second one compiles again: warm-up.)

Found with it: our PyTorch CIFAR step was 1.10x AlgoPerf's because ``Conv2dSame`` (flax's
'SAME' padding) copied every convolution input through ``F.pad``; it now passes the symmetric
part as the convolution's own padding and pads only the stride-2 remainder (0.97-0.99x).

Both sides get the same environment: the same ``XLA_FLAGS`` (``--xla-flags``; default the
caller's), ``TF_CPP_MIN_LOG_LEVEL=2``, the JAX settings AlgoPerf's ``submission_runner`` makes
(threefry2x32, partitionable) and, in PyTorch, ``torch.set_num_threads(--torch-threads)``
(default 1: with 2 threads on 2 busy cores PyTorch stalls at random, see
``harness_overhead.py``). AlgoPerf's process also imports TensorFlow, as its runner does
(with TensorFlow stubbed out instead, its MNIST step times moved by under 3%, i.e. noise).

Library versions. The step time depends on them, so the headline must compare ours with
AlgoPerf's pins (jax 0.7.0, flax 0.10.7, optax 0.2.2, torch 2.13.0). This project's ``.venv``
now pins the same stack; where it does not (an older ``.venv`` had jax 0.10.2), pass
``--ours-python``, an interpreter with exactly AlgoPerf's pins and this project installed, and
the headline (the ``step_time`` lines) uses it, with ours in ``.venv`` still in the table.
Every side's versions are printed, and the headline says whether they match.

Prepare AlgoPerf's side once (torch pinned to its CPU build: an unpinned torch pulls CUDA):

    git clone https://github.com/mlcommons/algorithmic-efficiency /tmp/algoperf-src
    echo 'version = "0.6.0"' > /tmp/algoperf-src/algoperf/_version.py  # setuptools-scm's
    python3 -m venv /tmp/algoperf-side-venv
    /tmp/algoperf-side-venv/bin/pip install jax==0.7.0 jaxlib==0.7.0 flax==0.10.7 \\
        optax==0.2.2 chex absl-py numpy tensorflow-cpu tensorflow-datasets \\
        torch==2.13.0+cpu -f https://download.pytorch.org/whl/cpu/torch/
    python3 -m venv /tmp/algoperf-ours-side-venv          # ours, with AlgoPerf's pins
    /tmp/algoperf-ours-side-venv/bin/pip install jax==0.7.0 jaxlib==0.7.0 flax==0.10.7 \\
        optax==0.2.2 chex absl-py numpy \\
        torch==2.13.0+cpu -f https://download.pytorch.org/whl/cpu/torch/
    /tmp/algoperf-ours-side-venv/bin/pip install --no-deps -e .

(torchvision, which AlgoPerf's PyTorch CIFAR and ImageNet modules import for their data
pipelines only, has no CPU build on PyPI that loads against torch's CPU build; when it cannot
be imported the driver puts empty stand-in modules in its place and says so.) Then run

    python benchmarks/workload_step_time.py --algoperf-repo /tmp/algoperf-src \\
        --algoperf-python /tmp/algoperf-side-venv/bin/python \\
        --ours-python /tmp/algoperf-ours-side-venv/bin/python

(or set ALGOPERF_REPO, ALGOPERF_PYTHON and ALGOPERF_OURS_PYTHON).

Last line: ``step_time worst=<ratio>``, the largest headline ratio (target <= 1.0).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from algoperf.workloads import registry

REPO_ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "@@step_time "  # prefix of the workers' protocol lines on stdout
GLOBAL_STEP = 101
# One example's shape (NHWC) and the number of classes of each workload measured here.
BATCH_SPECS = {
    "mnist": {"input_shape": (28, 28, 1), "num_classes": 10},
    "cifar": {"input_shape": (32, 32, 3), "num_classes": 10},
    "imagenet_resnet": {"input_shape": (224, 224, 3), "num_classes": 1000},
    "imagenet_vit": {"input_shape": (224, 224, 3), "num_classes": 1000},
}

# The step loop both workers run once their side has defined ``side_setup(cfg)``, which
# returns the workload, the loaded submission module, the rng module, a function converting a
# numpy batch to that side's tensors, and the torch module when the framework is PyTorch.
STEP_LOOP = r"""
import collections, importlib.metadata, importlib.util, json, os, resource, sys, time
import numpy as np

def rss_mb(field):  # VmRSS (now) or VmHWM (peak) in MB; ru_maxrss where /proc is absent
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def reset_peak_rss():  # VmHWM back to the current RSS (Linux clear_refs 5); whether it could
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False

def emit(**message):
    sys.__stdout__.write(MESSAGE + json.dumps(message) + "\n")
    sys.__stdout__.flush()

def versions():
    found = {}
    for name in ("jax", "jaxlib", "flax", "optax", "torch", "numpy", "tensorflow-cpu",
                 "tensorflow"):
        try:
            found[name.split("-")[0]] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found

def load_submission(path):
    spec_ = importlib.util.spec_from_file_location("reference_submission", path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module

def fixed_batch(cfg):
    rs = np.random.RandomState(cfg["seed"])
    n = cfg["batch_size"]
    return {"inputs": rs.standard_normal((n, *cfg["input_shape"])).astype(np.float32),
            "targets": rs.randint(0, cfg["num_classes"], n).astype(np.int32),
            "weights": np.ones(n, np.float32)}

cfg = json.loads(sys.argv[1])
t0 = time.perf_counter()
side = side_setup(cfg)
workload, submission, prng = side["workload"], side["submission"], side["prng"]
if cfg["framework"] == "pytorch":
    side["torch"].set_num_threads(cfg["torch_threads"])
    def sync(tree):
        if side["torch"].cuda.is_available():
            side["torch"].cuda.synchronize()
else:
    import jax
    sync = jax.block_until_ready
t1 = time.perf_counter()
hp = collections.namedtuple("Hyperparameters", sorted(cfg["hyperparameters"]))(
    **cfg["hyperparameters"])
model_rng, opt_rng, step_rng = prng.split(prng.PRNGKey(cfg["seed"]), 3)
params, model_state = workload.init_model_fn(model_rng)
opt_state = submission.init_optimizer_state(workload, params, model_state, hp, opt_rng)
batch = side["to_framework"](fixed_batch(cfg))
sync((params, batch))
t2 = time.perf_counter()
setup_rss = rss_mb("VmRSS")

def step():
    global opt_state, params, model_state
    opt_state, params, model_state = submission.update_params(
        workload=workload, current_param_container=params,
        current_params_types=workload.model_params_types, model_state=model_state,
        hyperparameters=hp, batch=batch, loss_type=workload.loss_type,
        optimizer_state=opt_state, eval_results=[], global_step=cfg["global_step"],
        rng=step_rng)

def timed_block(steps):  # (wall seconds, this process's CPU seconds, all its threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync((params, model_state))
    return time.perf_counter() - start, time.process_time() - cpu_start

def timed(steps):
    return timed_block(steps)[0]

first = timed(1)
warmup = [timed(1) for _ in range(cfg["warmup"])]
# Host memory: RSS before the first step, the process's peak so far (init, compilation and the
# untimed steps), then the peak is reset so that each block reports the timed steps' peak.
memory = {"setup_rss_mb": setup_rss, "maxrss_mb": rss_mb("VmHWM"),
          "ready_rss_mb": rss_mb("VmRSS"), "peak_reset": reset_peak_rss()}
emit(versions=versions(), python=sys.executable, import_s=t1 - t0, setup_s=t2 - t1,
     first_step_s=first, warmup_s=warmup, notes=side.get("notes", []), memory=memory)
for line in sys.stdin:
    steps = int(line)
    if steps <= 0:
        break
    seconds, cpu_seconds = timed_block(steps)
    emit(seconds=seconds, cpu_seconds=cpu_seconds, steps=steps, peak_rss_mb=rss_mb("VmHWM"))
"""

# AlgoPerf's side: its repository on sys.path, set up as its submission_runner does, its
# workload imported through its own registry and import_workload.
ALGOPERF_DRIVER = r"""
import os, sys, types

def side_setup(cfg):
    framework, notes = cfg["framework"], []
    sys.path.insert(0, cfg["repo"])
    if framework == "pytorch":
        try:
            import torchvision  # noqa: F401
        except Exception as error:  # no CPU build of torchvision loads against torch+cpu
            for name in ("torchvision", "torchvision.transforms", "torchvision.datasets",
                         "torchvision.datasets.folder", "torchvision.transforms.functional"):
                sys.modules[name] = types.ModuleType(name)
            for name in ("transforms", "datasets"):
                setattr(sys.modules["torchvision"], name, sys.modules["torchvision." + name])
            sys.modules["torchvision.datasets"].CIFAR10 = None
            sys.modules["torchvision.datasets.folder"].ImageFolder = None
            sys.modules["torchvision.transforms"].functional = (
                sys.modules["torchvision.transforms.functional"])
            # RandAugment's signature names a default mode at import time.
            sys.modules["torchvision.transforms"].InterpolationMode = types.SimpleNamespace(
                NEAREST=None, BILINEAR=None, BICUBIC=None)
            sys.modules["torchvision.transforms.functional"].pad = None
            notes.append(f"torchvision not importable ({type(error).__name__}): empty "
                         "stand-in modules (used by its data pipelines only)")
    import jax
    jax.config.update("jax_default_prng_impl", "threefry2x32")
    jax.config.update("jax_threefry_partitionable", True)
    from absl import flags
    flags.DEFINE_string("framework", framework, "")  # submission_runner's flag, read by prng
    flags.FLAGS.mark_as_parsed()
    from algoperf import random_utils as prng
    from algoperf.workloads import workloads
    if framework == "pytorch":
        from algoperf import pytorch_utils
        pytorch_utils.pytorch_init(False, 0, None)
    meta = workloads.WORKLOADS[cfg["workload"]]
    path = os.path.join(workloads.BASE_WORKLOADS_DIR,
                        meta["workload_path"] + "_" + framework, "workload.py")
    workload = workloads.import_workload(workload_path=path,
                                         workload_class_name=meta["workload_class_name"],
                                         workload_init_kwargs={})
    side = {"workload": workload, "prng": prng, "notes": notes,
            "submission": load_submission(cfg["submission"])}
    if framework == "jax":
        from algoperf import jax_sharding_utils
        sharding = jax_sharding_utils.get_batch_dim_sharding()
        # Its training pipelines yield inputs and labels only (no padding, so no weights).
        side["to_framework"] = lambda b: jax.device_put(
            {"inputs": b["inputs"], "targets": b["targets"]}, sharding)
    else:
        import torch
        from algoperf.pytorch_utils import pytorch_setup
        device = pytorch_setup()[2]
        side["torch"] = torch

        def to_framework(b):
            inputs = torch.as_tensor(b["inputs"], dtype=torch.float32, device=device)
            targets = torch.as_tensor(b["targets"], dtype=torch.long, device=device)
            if cfg["workload"] == "mnist":  # its tf.data queue: NHWC permuted, bool weights
                weights = torch.ones_like(targets, dtype=torch.bool, device=device)
                return {"inputs": inputs.permute(0, 3, 1, 2), "targets": targets,
                        "weights": weights}
            # torchvision DataLoaders: contiguous NCHW floats and int64 labels.
            return {"inputs": inputs.permute(0, 3, 1, 2).contiguous(), "targets": targets}

        side["to_framework"] = to_framework
    return side
"""

# Our side: set up as our runner does, the workload from our registry, our batch conversion.
OUR_DRIVER = r"""
def side_setup(cfg):
    from algoperf import frameworks
    from algoperf import random_utils as prng
    from algoperf.workloads import registry
    frameworks.setup(cfg["framework"])
    workload = registry.import_workload(cfg["workload"], cfg["framework"])
    side = {"workload": workload, "prng": prng, "to_framework": workload._to_framework_batch,
            "submission": load_submission(cfg["submission"])}
    if cfg["framework"] == "pytorch":
        import torch
        side["torch"] = torch
    return side
"""


class Worker:
    """One side's worker process for one workload and framework."""

    def __init__(self, label: str, python: str, driver: str, cfg: dict, cwd: Path,
                 env: dict[str, str]) -> None:
        self.label = label
        self._stderr = tempfile.TemporaryFile(mode="w+")
        script = f"MESSAGE = {MESSAGE!r}\n" + driver + STEP_LOOP
        self._proc = subprocess.Popen(
            [python, "-c", script, json.dumps(cfg)], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.ready = self._read()

    def _read(self) -> dict:
        for line in self._proc.stdout:
            if line.startswith(MESSAGE):
                return json.loads(line[len(MESSAGE):])
        self._proc.wait()
        self._stderr.seek(0)
        sys.exit(f"{self.label} worker failed (exit {self._proc.returncode}):\n"
                 f"{self._stderr.read()[-3000:]}")

    def block(self, steps: int) -> dict:
        """Runs one block of ``steps`` steps; the worker's reply (seconds, peak RSS)."""
        self._proc.stdin.write(f"{steps}\n")
        self._proc.stdin.flush()
        return self._read()

    def step_time(self, steps: int) -> float:
        return self.block(steps)["seconds"] / steps

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.write("0\n")
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._stderr.close()


def algoperf_workloads(repo: Path) -> set[str]:
    """The workload names of AlgoPerf's registry (``WORKLOADS`` of its workloads.py), read
    without importing it."""
    tree = ast.parse((repo / "algoperf" / "workloads" / "workloads.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "WORKLOADS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise SystemExit(f"no WORKLOADS registry in {repo}/algoperf/workloads/workloads.py")


def select_workloads(repo: Path, wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """The workloads to measure and one line per implemented workload that is skipped."""
    theirs = algoperf_workloads(repo)
    measured, skipped = [], []
    for name in registry.implemented():
        info = registry.get_workload(name)
        if wanted is not None and name not in wanted:
            continue
        if info.base not in theirs:
            skipped.append(f"{name} (ours only: no AlgoPerf counterpart)")
        elif info.is_variant:
            skipped.append(f"{name} (variant; base workloads only)")
        elif name not in BATCH_SPECS:
            skipped.append(f"{name} (no synthetic batch shape in this benchmark yet)")
        else:
            measured.append(name)
    return measured, skipped


# The libraries both sides' step runs on (TensorFlow, which only AlgoPerf's process imports,
# is printed but not compared).
STACK = ("jax", "jaxlib", "flax", "optax", "torch", "numpy")


def fmt_versions(ready: dict) -> str:
    v = ready["versions"]
    return " ".join(f"{k} {v[k]}" for k in (*STACK, "tensorflow") if k in v)


def _same_libraries(algoperf: dict, ours: dict) -> bool:
    """Whether our side runs the library versions AlgoPerf's side runs."""
    return all(algoperf["versions"].get(k) == ours["versions"].get(k) for k in STACK)


def measure(workload: str, framework: str, sides: dict[str, tuple[str, str, Path]],
            base_cfg: dict, args: argparse.Namespace, env: dict[str, str],
            batch: dict | None = None) -> dict:
    """Interleaved step times of every side on one workload and framework, and each side's
    peak RSS over its timed blocks; ``batch`` replaces the workload's ``BATCH_SPECS`` entry
    (e.g. ``{"batch_file": ...}`` for a driver that loads a saved batch)."""
    cfg = {**base_cfg, **(BATCH_SPECS[workload] if batch is None else batch),
           "workload": workload, "framework": framework,
           "submission": str(args.algoperf_repo / args.submission_dir
                             / f"{framework}_nadamw_full_budget.py")}
    workers: dict[tuple[str, int], Worker] = {}
    try:
        for label, (python, driver, cwd) in sides.items():  # one at a time: no overlap
            for process in range(args.processes):
                workers[label, process] = Worker(f"{label} {workload}/{framework}", python,
                                                 driver, cfg, cwd, env)
        first = workers["AlgoPerf", 0].ready
        per_step = statistics.median(first["warmup_s"] or [first["first_step_s"]])
        steps = max(1, round(args.block_seconds / per_step))
        times: dict[str, list[float]] = {label: [] for label in sides}
        cpu_times: dict[str, list[float]] = {label: [] for label in sides}
        peak_rss: dict[str, float] = {}
        keys = list(workers)
        for r in range(args.repeats):
            for label, process in keys[r % len(keys):] + keys[:r % len(keys)]:
                reply = workers[label, process].block(steps)
                times[label].append(reply["seconds"] / steps)
                cpu_times[label].append(reply["cpu_seconds"] / steps)
                peak_rss[label] = max(peak_rss.get(label, 0.0), reply["peak_rss_mb"])
        return {"steps": steps, "ready": {label: workers[label, 0].ready for label in sides},
                "median": {k: statistics.median(v) for k, v in times.items()},
                "min": {k: min(v) for k, v in times.items()},
                "cpu_median": {k: statistics.median(v) for k, v in cpu_times.items()},
                "peak_rss_mb": peak_rss}
    finally:
        for worker in workers.values():
            worker.close()


def first_hyperparameters(repo: Path, submission_dir: str) -> dict:
    """The first point of the baseline folder's ``tuning_search_space.json``."""
    space = json.loads((repo / submission_dir / "tuning_search_space.json").read_text())
    return space[0] if isinstance(space, list) else {
        k: v["feasible_points"][0] for k, v in space.items()}


def interpreters(args: argparse.Namespace) -> None:
    """``--algoperf-python`` and ``--ours-python`` as absolute paths (workers start in other
    folders), or exit with one line naming the one that does not exist."""
    for option in ("algoperf_python", "ours_python"):
        given = getattr(args, option)
        if given:
            found = shutil.which(given)
            if not found:
                sys.exit(f"--{option.replace('_', '-')} {given}: no such interpreter")
            setattr(args, option, str(Path(found).absolute()))


def worker_env(xla_flags: str) -> dict[str, str]:
    """The environment of every worker: the caller's, less what would mix the two sides'
    packages or ranks, with the given ``XLA_FLAGS`` and JAX on the CPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOCAL_RANK")}
    env.update(XLA_FLAGS=xla_flags, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algoperf-repo", type=Path,
                        default=os.environ.get("ALGOPERF_REPO"),
                        help="checkout of mlcommons/algorithmic-efficiency")
    parser.add_argument("--algoperf-python", default=os.environ.get("ALGOPERF_PYTHON"),
                        help="interpreter with AlgoPerf's dependencies (its JAX stack, torch, "
                             "tensorflow, tensorflow-datasets)")
    parser.add_argument("--ours-python", default=os.environ.get("ALGOPERF_OURS_PYTHON"),
                        help="interpreter with AlgoPerf's library pins and this project "
                             "installed (--no-deps): the identical-versions headline")
    parser.add_argument("--submission-dir", default="algorithms/baselines/external_tuning",
                        help="folder of <framework>_nadamw_full_budget.py in the checkout")
    parser.add_argument("--workloads", help="comma-separated subset (default: all measured)")
    parser.add_argument("--frameworks", default="jax,pytorch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="steps after the first, untimed")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--processes", type=int, default=1,
                        help="worker processes per side, each timed in every repeat")
    parser.add_argument("--block-seconds", type=float, default=0.5,
                        help="length of one timed block of steps (from AlgoPerf's step time)")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--xla-flags", default=os.environ.get("XLA_FLAGS", ""),
                        help="XLA_FLAGS of every worker (default: the caller's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.algoperf_repo or not (args.algoperf_repo / "algoperf" / "workloads").is_dir():
        sys.exit("pass --algoperf-repo (a checkout of mlcommons/algorithmic-efficiency); "
                 "see this file's docstring")
    if not args.algoperf_python:
        sys.exit("pass --algoperf-python (an interpreter with AlgoPerf's dependencies); "
                 "see this file's docstring")
    args.algoperf_repo = args.algoperf_repo.resolve()
    interpreters(args)
    hyperparameters = first_hyperparameters(args.algoperf_repo, args.submission_dir)
    wanted = args.workloads.split(",") if args.workloads else None
    measured, skipped = select_workloads(args.algoperf_repo, wanted)

    env = worker_env(args.xla_flags)
    base_cfg = {"repo": str(args.algoperf_repo), "batch_size": args.batch_size,
                "seed": args.seed, "warmup": args.warmup, "torch_threads": args.torch_threads,
                "global_step": GLOBAL_STEP, "hyperparameters": hyperparameters}
    with tempfile.TemporaryDirectory(prefix="step-time-") as tmp:
        sides: dict[str, tuple[str, str, Path]] = {
            "AlgoPerf": (args.algoperf_python, ALGOPERF_DRIVER, args.algoperf_repo)}
        if args.ours_python:
            sides["ours"] = (args.ours_python, OUR_DRIVER, Path(tmp))
        sides["ours .venv"] = (sys.executable, OUR_DRIVER, Path(tmp))
        headline = "ours" if args.ours_python else "ours .venv"
        results = {(w, fw): measure(w, fw, sides, base_cfg, args, env)
                   for w in measured for fw in args.frameworks.split(",")}

    print(f"batch {args.batch_size}, AlgoPerf's NAdamW baseline ({args.submission_dir}), "
          f"hyperparameters {json.dumps(hyperparameters, sort_keys=True)}")
    print(f"XLA_FLAGS={args.xla_flags!r}, torch threads {args.torch_threads}, "
          f"{args.repeats * args.processes} interleaved blocks per side ({args.processes} "
          f"processes) after 1 + {args.warmup} warm-up steps")
    any_result = next(iter(results.values()), None)
    if any_result:
        for label, ready in any_result["ready"].items():
            print(f"  {label:<11} {fmt_versions(ready)}  ({ready['python']})")
        notes = {n for r in results.values() for n in r["ready"]["AlgoPerf"]["notes"]}
        for note in sorted(notes):
            print(f"  AlgoPerf note: {note}")
    if skipped:
        print("skipped: " + ", ".join(skipped))
    print(f"{'workload/framework':<20}{'side':<12}{'steps':>6}{'median ms':>12}{'min ms':>10}"
          f"{'/AlgoPerf':>11}{'(min)':>8}{'(cpu)':>8}{'first step s':>14}")
    ratios = {}
    for (workload, framework), r in results.items():
        med, low, cpu = r["median"], r["min"], r["cpu_median"]
        for k, label in enumerate(sides):
            pair = f"{workload}/{framework}" if k == 0 else ""
            ratio = (f"{med[label] / med['AlgoPerf']:>11.3f}{low[label] / low['AlgoPerf']:>8.3f}"
                     f"{cpu[label] / cpu['AlgoPerf']:>8.3f}"
                     if label != "AlgoPerf" else f"{'':>27}")
            print(f"{pair:<20}{label:<12}{r['steps']:>6}{med[label] * 1e3:>12.2f}"
                  f"{low[label] * 1e3:>10.2f}{ratio}{r['ready'][label]['first_step_s']:>14.2f}")
        ratios[f"{workload}/{framework}"] = med[headline] / med["AlgoPerf"]
    print(f"headline ratio: {headline} / AlgoPerf, median step times"
          + (" (identical library versions)" if any_result and _same_libraries(
              any_result["ready"]["AlgoPerf"], any_result["ready"][headline]) else
             " (library versions differ: pass --ours-python for identical ones)"))
    for pair, ratio in ratios.items():
        print(f"step_time {pair}={ratio:.3f}")
    print(f"step_time worst={max(ratios.values()):.3f}" if ratios else "step_time worst=nan")


if __name__ == "__main__":
    main()
