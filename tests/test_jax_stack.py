"""The JAX stack AlgoPerf v0.6's code and submissions are written for, and its APIs that later
releases removed but AlgoPerf submissions still call.

AlgoPerf v0.6 pins jax 0.7.0, flax 0.10.7, optax 0.2.2 and chex 0.1.86; the project's `jax`
extra pins the same (docs/containers.md). The first test fails when another stack is installed:
reinstall with ``pip install -e '.[jax]'``. The AlgoPerf baseline test reads the baseline from
a copy of AlgoPerf's repository (a checkout or a bare git repository) named by
``$ALGOPERF_REPO``, and skips without one: the repository ships none of AlgoPerf's code.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import tomllib
import warnings
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from packaging.requirements import Requirement

from algoperf import tuning
from algoperf.submission import load_submission
from algoperf.workloads.registry import import_workload

ROOT = Path(__file__).resolve().parent.parent
ALGOPERF_REPO = Path(os.environ["ALGOPERF_REPO"]) if os.environ.get("ALGOPERF_REPO") else None
NADAMW_BASELINE = "algorithms/baselines/external_tuning/jax_nadamw_full_budget.py"

# AlgoPerf v0.6's pyproject.toml: jax_cpu and jax_core_deps (jax==0.7.0 itself requires
# jaxlib==0.7.0, which the project pins too).
ALGOPERF_V06_JAX_STACK = {"jax": "0.7.0", "jaxlib": "0.7.0", "flax": "0.10.7",
                          "optax": "0.2.2", "chex": "0.1.86"}


def jax_extra_pins() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["jax"]
    pins = {}
    for line in extra:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"the jax extra must pin exactly: {line}"
        pins[req.name] = spec.version
    return pins


def test_jax_extra_pins_algoperf_v06s_stack():
    pins = jax_extra_pins()  # plus what workloads need beside it (jraph for ogbg), pinned too
    assert {name: pins.get(name) for name in ALGOPERF_V06_JAX_STACK} == ALGOPERF_V06_JAX_STACK


def test_installed_jax_stack_is_the_one_the_jax_extra_pins():
    installed = {name: importlib.metadata.version(name) for name in jax_extra_pins()}
    assert installed == jax_extra_pins(), "reinstall the pinned stack: pip install -e '.[jax]'"


def test_jnp_clip_takes_numpys_a_min_and_a_max_keywords():
    # AlgoPerf's cautious_nadamw submission calls jnp.clip(x, a_min=...); JAX 0.10 removed
    # those keywords (0.7.0 accepts them with a DeprecationWarning).
    x = jnp.array([-2.0, 0.5, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        clipped = jnp.clip(x, a_min=0.0, a_max=1.0)
        lower_only = jnp.clip(x, a_min=1e-3)
    np.testing.assert_array_equal(clipped, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(lower_only, np.float32([1e-3, 0.5, 3.0]))


def test_gradient_clipping_idioms_of_algoperf_submissions_agree():
    # AlgoPerf's baselines: a sum over jax.tree_util.tree_leaves and lax.clamp by keyword;
    # its schedule-free submissions: optax.global_norm (deprecated after optax 0.2.2).
    grads = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([0.5, -4.0])}
    by_leaves = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        by_optax = optax.global_norm(grads)
    np.testing.assert_allclose(by_optax, by_leaves, rtol=1e-7)
    np.testing.assert_allclose(by_leaves, np.sqrt(55.0 + 0.25 + 16.0), rtol=1e-7)
    scale = jax.lax.clamp(min=0.0, x=1.0 / (by_leaves + 1e-6), max=1.0)
    assert 0.0 < float(scale) < 1.0
    assert chex.Array is not None  # the baselines annotate their optimizer state with it


def read_algoperf_file(path: str) -> str:
    """``path`` from the AlgoPerf repository copy: its work tree, else its git HEAD."""
    if (ALGOPERF_REPO / path).is_file():
        return (ALGOPERF_REPO / path).read_text()
    proc = subprocess.run(["git", "--git-dir", str(ALGOPERF_REPO), "show", f"HEAD:{path}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"no copy of AlgoPerf's repository with {path} at {ALGOPERF_REPO} "
                    "(set ALGOPERF_REPO)")
    return proc.stdout


def test_algoperfs_own_nadamw_baseline_trains_and_takes_our_nadamw_steps(tmp_path):
    if ALGOPERF_REPO is None or not ALGOPERF_REPO.exists():
        pytest.skip(f"no copy of AlgoPerf's repository at {ALGOPERF_REPO} (set ALGOPERF_REPO)")
    path = tmp_path / "jax_nadamw_full_budget.py"
    path.write_text(read_algoperf_file(NADAMW_BASELINE))
    baseline = load_submission(path, "jax").module
    ours = load_submission(ROOT / "submissions" / "nadamw" / "submission_jax.py", "jax").module
    hp = tuning.make_hyperparameters({
        "learning_rate": 1e-2, "one_minus_beta1": 0.1, "beta2": 0.99, "weight_decay": 0.05,
        "warmup_factor": 0.0, "dropout_rate": 0.0})
    rng = np.array([0, 1], np.uint32)

    workload = import_workload("digits", "jax")
    params, model_state = workload.init_model_fn(rng)

    # The two optimizers take the same steps on the same gradients.
    theirs, theirs_update = baseline.init_optimizer_state(workload, params, model_state, hp, rng)
    mine, mine_update = ours.init_optimizer_state(workload, params, model_state, hp, rng)
    theirs_params = mine_params = params
    key = jax.random.PRNGKey(0)
    for _ in range(3):
        key, sub = jax.random.split(key)
        grads = jax.tree.map(lambda p, k=sub: 0.1 * jax.random.normal(k, p.shape), params)
        updates, theirs = theirs_update(grads, theirs, theirs_params)
        theirs_params = optax.apply_updates(theirs_params, updates)
        updates, mine = mine_update(grads, mine, mine_params)
        mine_params = optax.apply_updates(mine_params, updates)
    for a, b in zip(jax.tree.leaves(theirs_params), jax.tree.leaves(mine_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-8)

    # And the baseline's own jitted training step trains the digits workload.
    optimizer_state = baseline.init_optimizer_state(workload, params, model_state, hp, rng)
    queue = workload._build_input_queue(rng, "train", None, baseline.get_batch_size("mnist"))
    before = workload.eval_model(1024, params, model_state, rng, None, None, 0)["train/loss"]
    for step in range(10):
        optimizer_state, params, model_state = baseline.update_params(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=hp, batch=next(queue), loss_type=workload.loss_type,
            optimizer_state=optimizer_state, eval_results=[], global_step=step, rng=rng)
    after = workload.eval_model(1024, params, model_state, rng, None, None, 0)["train/loss"]
    assert after < before


def soft_stack_after_jax_setup(soft: int) -> int:
    """The soft stack limit of a fresh process started with ``soft`` once it set up JAX."""
    import resource
    import sys

    def start_with_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_STACK,
                           (soft, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    code = ("import resource; from algoperf import frameworks; frameworks.setup('jax'); "
            "print(resource.getrlimit(resource.RLIMIT_STACK)[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, preexec_fn=start_with_soft_limit)
    return int(done.stdout.split()[-1])


def test_jax_setup_gives_xla_a_stack_deep_enough_for_the_largest_compiles():
    import resource

    from algoperf import frameworks

    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    wanted = frameworks.COMPILE_STACK_BYTES if hard == resource.RLIM_INFINITY else min(
        frameworks.COMPILE_STACK_BYTES, hard)
    assert soft_stack_after_jax_setup(8 * 2**20) == wanted  # Linux's default, 8 MiB
    if hard == resource.RLIM_INFINITY:  # a larger limit is never lowered
        assert soft_stack_after_jax_setup(resource.RLIM_INFINITY) == resource.RLIM_INFINITY
