"""fastmri's JAX U-Net against AlgoPerf's, in one process: the model without process placement.

``ogbg_fastmri_step_time.py`` times each side in its own interpreter, and two identical
workers of ours differ there by up to 2.7% (12 blocks each), more than the difference left to
explain. This benchmark runs both models in one interpreter instead: AlgoPerf's
``fastmri_jax/models.py`` is loaded by path from its checkout (its one import of AlgoPerf's
package, ``algoperf.jax_utils.Dropout``, is loaded from the same checkout under another name,
since our package is also called ``algoperf``), initialised once, and both models get the
same parameters (the trees must match), the same batch of ``--batch-size`` 320 x 320 slices
and the same jitted step: the mean absolute error, its gradient and an SGD update, with the
dropout rate traced as AlgoPerf's JAX baselines pass it (0, their search spaces' first point).
The two steps' losses must agree. Steps alternate, the order flipping every repeat; the
figure is the median step time, ours / AlgoPerf's.

    .venv/bin/python benchmarks/fastmri_unet_ab.py --algoperf-repo /tmp/algoperf-src

Last line: ``step_time fastmri_unet_jax=<ratio>`` (target <= 1.0).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from algoperf.workloads.fastmri.fastmri_jax.models import UNet


def algoperf_unet(repo: Path) -> type:
    """AlgoPerf's flax ``UNet`` class, its ``Dropout`` taken from the same checkout."""
    spec = importlib.util.spec_from_file_location("algoperf_checkout_jax_utils",
                                                  repo / "algoperf" / "jax_utils.py")
    jax_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jax_utils)
    path = repo / "algoperf" / "workloads" / "fastmri" / "fastmri_jax" / "models.py"
    source = path.read_text()
    line = "from algoperf.jax_utils import Dropout"
    if line not in source:
        sys.exit(f"{path}: no line '{line}'; this benchmark knows AlgoPerf's 2c90454f layout")
    module = types.ModuleType("algoperf_checkout_unet")
    module.Dropout = jax_utils.Dropout
    # dont_inherit: not this file's ``from __future__ import annotations``, which would turn
    # the flax dataclass fields' annotations into strings that dataclasses cannot resolve.
    exec(compile(source.replace(line, ""), str(path), "exec", dont_inherit=True),
         module.__dict__)
    return module.UNet


def train_step(model, inputs: jax.Array, targets: jax.Array):
    """Jitted ``(params, rate, key) -> (params, loss)``: L1 loss, gradient, SGD at 0.01."""
    @jax.jit
    def step(params, rate, key):
        def loss(p):
            out = model.apply({"params": p}, inputs, train=True, dropout_rate=rate,
                              rngs={"dropout": key})
            return jnp.mean(jnp.abs(out - targets))
        value, grads = jax.value_and_grad(loss)(params)
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), value
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algoperf-repo", type=Path, required=True,
                        help="checkout of mlcommons/algorithmic-efficiency")
    parser.add_argument("--batch-size", type=int, default=2, help="320 x 320 slices")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    inputs, targets = (jnp.asarray(rng.randn(args.batch_size, 320, 320).astype(np.float32))
                       for _ in range(2))
    models = {"ours": UNet(), "AlgoPerf": algoperf_unet(args.algoperf_repo.resolve())()}
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    initialised = {name: model.init(keys, inputs, train=False)["params"]
                   for name, model in models.items()}
    if jax.tree.structure(initialised["ours"]) != jax.tree.structure(initialised["AlgoPerf"]):
        sys.exit("the two U-Nets' parameter trees differ; nothing to compare")
    params = initialised["AlgoPerf"]
    steps = {name: train_step(model, inputs, targets) for name, model in models.items()}
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
    print(f"step_time fastmri_unet_jax={ratio:.3f}")


if __name__ == "__main__":
    main()
