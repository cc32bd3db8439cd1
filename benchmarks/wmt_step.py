"""wmt training-step time: our workload against AlgoPerf's own wmt code, per framework.

A training step is the same on both sides: ``model_fn`` in TRAIN mode (dropout 0.1) on one
fixed packed batch, ``loss_fn`` with label smoothing 0.1, the mean loss (summed /
n_valid_examples), its gradient and a plain SGD update (JAX: one jitted function with
``optax.sgd``; PyTorch: ``loss.backward()`` and ``torch.optim.SGD``). The batch is built in
numpy from one seed: ``--batch-size`` rows of 256 tokens per side, each two packed pairs of
128 tokens (positions and segment ids as the packing gives them), laid out as each side's
pipeline lays it out (AlgoPerf: targets and weights (B, 256); ours: per position).

Each side runs in its own interpreter (AlgoPerf's package is also named ``algoperf``; where
``tensorflow_text`` or ``sentencepiece``, which only its tokeniser uses, is not installed, an
empty stand-in module takes its place): the
AlgoPerf side in ``--algoperf-python`` with ``--algoperf-repo`` on its path (see
``workload_step_time.py`` for preparing both), ours in this interpreter's. A worker builds the
workload and model, takes ``--warmup`` steps (the first one compiles, in JAX) and then times
``--steps`` steps; the figure is the median step. Workers run one after the other.

    python benchmarks/wmt_step.py --algoperf-repo /tmp/algoperf-src \\
        --algoperf-python /tmp/algoperf-side-venv/bin/python

Last line: ``wmt_step jax=<ours/AlgoPerf> pytorch=<ours/AlgoPerf>`` (<= 1.0: ours no slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, statistics, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
side, framework, n, length = cfg["side"], cfg["framework"], cfg["batch_size"], 256
rs = np.random.RandomState(0)
batch = {"inputs": rs.randint(3, 32000, (n, length)), "targets": rs.randint(3, 32000, (n, length))}
for key in ("inputs", "targets"):
    batch[key + "_position"] = np.tile(np.arange(length) % 128, (n, 1))
    batch[key + "_segmentation"] = np.tile(1 + (np.arange(length) >= 128), (n, 1))
batch["weights"] = (batch["targets"] > 0).astype(np.float32)
if side == "ours":
    batch["targets"] = batch["targets"].reshape(-1)
    batch["weights"] = batch["weights"].reshape(-1)
import importlib.util, types
# AlgoPerf's tokenizer module imports these; the step never tokenises.
for name, attributes in (("tensorflow_text", ()), ("sentencepiece", ("SentencePieceTrainer",))):
    if importlib.util.find_spec(name) is None:
        sys.modules[name] = types.ModuleType(name)
        for attribute in attributes:
            setattr(sys.modules[name], attribute, None)
module = ("algoperf.workloads.wmt.wmt_%s.workload" % framework)
WmtWorkload = __import__(module, fromlist=["WmtWorkload"]).WmtWorkload
from algoperf import spec
workload = WmtWorkload()
TRAIN = spec.ForwardPassMode.TRAIN
if framework == "jax":
    import jax, jax.numpy as jnp, optax
    rng = jax.random.PRNGKey(0)
    params, state = workload.init_model_fn(rng)
    arrays = {k: jnp.asarray(v.astype(np.float32 if k == "weights" else np.int32))
              for k, v in batch.items()}
    optimizer = optax.sgd(1e-3)
    opt_state = optimizer.init(params)
    @jax.jit
    def step(params, opt_state, arrays, rng):
        def loss_of(params):
            logits, _ = workload.model_fn(params, arrays, state, TRAIN, rng, False)
            out = workload.loss_fn(arrays["targets"], logits, arrays["weights"], 0.1)
            return out["summed"] / out["n_valid_examples"]
        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    def run():
        global params, opt_state
        params, opt_state, loss = step(params, opt_state, arrays, rng)
        loss.block_until_ready()
else:
    import torch
    torch.set_num_threads(cfg["torch_threads"])
    model, state = workload.init_model_fn([0, 0])
    tensors = {k: torch.from_numpy(v.astype(np.float32 if k == "weights" else np.int64))
               for k, v in batch.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    def run():
        logits, _ = workload.model_fn(model, tensors, state, TRAIN, [0, 0], False)
        out = workload.loss_fn(tensors["targets"], logits, tensors["weights"], 0.1)
        loss = out["summed"] / out["n_valid_examples"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
start = time.perf_counter(); run(); first = time.perf_counter() - start
for _ in range(cfg["warmup"]):
    run()
times = []
for _ in range(cfg["steps"]):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print("@@wmt_step " + json.dumps({"first": first, "median": statistics.median(times)}))
"""


def run_side(python: str, side: str, framework: str, args, extra_path: str | None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    if extra_path:
        env["PYTHONPATH"] = extra_path
    cfg = {"side": side, "framework": framework, "batch_size": args.batch_size,
           "warmup": args.warmup, "steps": args.steps, "torch_threads": args.torch_threads}
    out = subprocess.run([python, "-c", WORKER, json.dumps(cfg)], env=env, cwd=extra_path or
                         REPO_ROOT, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("@@wmt_step "):
            return json.loads(line.removeprefix("@@wmt_step "))
    raise SystemExit(f"{side} {framework} worker failed:\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algoperf-repo", default=os.environ.get("ALGOPERF_REPO"),
                        required="ALGOPERF_REPO" not in os.environ)
    parser.add_argument("--algoperf-python", default=os.environ.get("ALGOPERF_PYTHON"),
                        required="ALGOPERF_PYTHON" not in os.environ)
    parser.add_argument("--frameworks", default="jax,pytorch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    ratios = {}
    for framework in args.frameworks.split(","):
        theirs = run_side(args.algoperf_python, "algoperf", framework, args, args.algoperf_repo)
        ours = run_side(sys.executable, "ours", framework, args, None)
        ratios[framework] = ours["median"] / theirs["median"]
        print(f"{framework}: ours {ours['median']:.2f} s/step (first {ours['first']:.1f} s), "
              f"AlgoPerf {theirs['median']:.2f} s/step (first {theirs['first']:.1f} s), "
              f"ratio {ratios[framework]:.2f}", flush=True)
    print("wmt_step " + " ".join(f"{fw}={ratio:.2f}" for fw, ratio in ratios.items()))


if __name__ == "__main__":
    main()
