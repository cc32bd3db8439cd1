"""A JAX model of ours against AlgoPerf's, in one process: the model without process placement.

``saved_batch_step_time.py`` times each side in its own interpreter, and two identical
workers of ours differ there by up to 2.7% (fastmri, 12 blocks each), more than the
differences left to explain. This benchmark runs both models in one interpreter instead:
AlgoPerf's ``<workload>_jax/models.py`` is loaded by path from its checkout (its one import of
AlgoPerf's package, ``algoperf.jax_utils.Dropout``, is loaded from the same checkout under
another name, since our package is also called ``algoperf``), initialised once, and both
models get the same parameters (the trees must match), the same batch and the same jitted
step: the workload's training loss, its gradient and an SGD update, with the dropout rate
traced as AlgoPerf's JAX baselines pass it (0, their search spaces' first point). The two
steps' losses must agree. Steps alternate, the order flipping every repeat; the figure is the
median step time, ours / AlgoPerf's.

``--model``:

- ``fastmri``: the U-Net on ``--batch-size`` random 320 x 320 slices, mean absolute error;
- ``criteo1tb``: the full-size DLRM-small (539M parameters, about 7 GB here with the gradient
  and the update) on ``--batch-size`` lines (default 8,192) of synthetic day files parsed by
  our pipeline, mean sigmoid cross-entropy.

    .venv/bin/python benchmarks/jax_model_ab.py --algoperf-repo /tmp/algoperf-src \\
        --model fastmri|criteo1tb

Last line: ``step_time <model>_jax=<ratio>`` (target <= 1.0).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

HERE = Path(__file__).resolve().parent


def algoperf_model(repo: Path, workload: str, name: str) -> type:
    """AlgoPerf's flax model class ``name`` of ``workload``, its ``Dropout`` taken from the
    same checkout."""
    spec = importlib.util.spec_from_file_location("algoperf_checkout_jax_utils",
                                                  repo / "algoperf" / "jax_utils.py")
    jax_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jax_utils)
    path = repo / "algoperf" / "workloads" / workload / f"{workload}_jax" / "models.py"
    source = path.read_text()
    line = "from algoperf.jax_utils import Dropout"
    if line not in source:
        sys.exit(f"{path}: no line '{line}'; this benchmark knows AlgoPerf's 2c90454f layout")
    module = types.ModuleType(f"algoperf_checkout_{workload}_models")
    module.Dropout = jax_utils.Dropout
    # dont_inherit: not this file's ``from __future__ import annotations``, which would turn
    # the flax dataclass fields' annotations into strings that dataclasses cannot resolve.
    exec(compile(source.replace(line, ""), str(path), "exec", dont_inherit=True),
         module.__dict__)
    return getattr(module, name)


def fastmri_case(batch_size: int) -> tuple[type, type, tuple, Callable]:
    """(our class, AlgoPerf's class name, (inputs, targets), loss) of the U-Net."""
    from algoperf.workloads.fastmri.fastmri_jax.models import UNet

    rng = np.random.RandomState(0)
    batch = tuple(jnp.asarray(rng.randn(batch_size, 320, 320).astype(np.float32))
                  for _ in range(2))
    return UNet, "UNet", batch, lambda out, targets: jnp.mean(jnp.abs(out - targets))


def criteo1tb_case(batch_size: int) -> tuple[type, type, tuple, Callable]:
    """(our class, AlgoPerf's class name, (inputs, targets), loss) of DLRM-small."""
    from algoperf.workloads.criteo1tb.criteo1tb_jax.models import DlrmSmall

    sys.path.insert(0, str(HERE))
    import saved_batch_step_time as saved

    with tempfile.TemporaryDirectory(prefix="criteo-ab-") as tmp:
        path = Path(tmp) / "criteo1tb.npz"
        saved.write_criteo1tb(path, batch_size, 0)
        with np.load(path) as arrays:
            batch = jnp.asarray(arrays["inputs"]), jnp.asarray(arrays["targets"]).reshape(-1)

    def loss(logits, targets):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits.reshape(-1), targets))

    return DlrmSmall, "DlrmSmall", batch, loss


CASES = {"fastmri": fastmri_case, "criteo1tb": criteo1tb_case}


def train_step(model, inputs: jax.Array, targets: jax.Array, loss_fn: Callable):
    """Jitted ``(params, rate, key) -> (params, loss)``: loss, gradient, SGD at 0.01."""
    @jax.jit
    def step(params, rate, key):
        def loss(p):
            out = model.apply({"params": p}, inputs, train=True, dropout_rate=rate,
                              rngs={"dropout": key})
            return loss_fn(out, targets)
        value, grads = jax.value_and_grad(loss)(params)
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), value
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algoperf-repo", type=Path, required=True,
                        help="checkout of mlcommons/algorithmic-efficiency")
    parser.add_argument("--model", choices=sorted(CASES), default="fastmri")
    parser.add_argument("--batch-size", type=int,
                        help="fastmri: 320 x 320 slices (2); criteo1tb: lines (8192)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model")
    args = parser.parse_args()
    batch_size = args.batch_size or {"fastmri": 2, "criteo1tb": 8192}[args.model]
    ours, theirs, (inputs, targets), loss = CASES[args.model](batch_size)
    models = {"ours": ours(),
              "AlgoPerf": algoperf_model(args.algoperf_repo.resolve(), args.model, theirs)()}
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    initialised = {name: jax.jit(model.init, static_argnames="train")(
        keys, inputs, train=False)["params"] for name, model in models.items()}
    if jax.tree.structure(initialised["ours"]) != jax.tree.structure(initialised["AlgoPerf"]):
        sys.exit("the two models' parameter trees differ; nothing to compare")
    params = initialised.pop("AlgoPerf")
    del initialised
    steps = {name: train_step(model, inputs, targets, loss) for name, model in models.items()}
    rate, key = jnp.float32(0.0), jax.random.PRNGKey(2)
    losses = {name: float(jax.block_until_ready(step(params, rate, key))[1])
              for name, step in steps.items()}  # compiles
    print(f"first-step losses: {losses}")
    if not np.isclose(losses["ours"], losses["AlgoPerf"], rtol=1e-5):
        sys.exit("the two models' losses differ: not the same function")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(args.repeats):
        for name in (list(steps) if repeat % 2 == 0 else list(steps)[::-1]):
            start = time.perf_counter()
            jax.block_until_ready(steps[name](params, rate, key))
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:<9} median {statistics.median(values):.3f} s  min {min(values):.3f} s "
              f"({len(values)} steps)")
    ratio = statistics.median(times["ours"]) / statistics.median(times["AlgoPerf"])
    print(f"min ratio {min(times['ours']) / min(times['AlgoPerf']):.3f}")
    print(f"step_time {args.model}_jax={ratio:.3f}")


if __name__ == "__main__":
    main()
