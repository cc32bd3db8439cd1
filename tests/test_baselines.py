"""The paper baselines added to submissions/ (LAMB, Adafactor, SAM with AdamW, Shampoo): each
trains the
digits workload to its validation target in JAX and PyTorch at one fixed good point, the
PyTorch optimizers written by hand compute the JAX versions' rules (optax's where optax has
one), both frameworks take the same steps, and each search space names every hyperparameter
the code reads.

The training loop and helpers are tests/test_submissions.py's (the runner's loop: data
selection, update, an eval every 25 steps); nothing of the project is mocked.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from test_submissions import (
    MODEL_RNG,
    OPTIONAL_HYPERPARAMETERS,
    STEP_RNG,
    RecordingHyperparameters,
    central_point,
    load,
    search_space,
    train,
    train_both_frameworks,
)

from algoperf import spec, tuning
from algoperf.workloads.registry import import_workload

BASELINES = ("lamb", "adafactor", "sam", "shampoo")
FRAMEWORKS = ("jax", "pytorch")
EVAL_EVERY = 25
COMMON = {"one_minus_beta1": 0.1, "warmup_factor": 0.05, "label_smoothing": 0.1,
          "dropout_rate": 0.0}
# One good point per baseline, inside its search space; measured: LAMB reaches 0.975 in
# 100-125 steps, Adafactor in 75, SAM in 100, Shampoo in 100 (both frameworks; Shampoo
# before its preconditioning starts at step 101, on its grafted step).
GOOD_POINTS = {
    "lamb": {"learning_rate": 0.01, "beta2": 0.999, "weight_decay": 0.01},
    "adafactor": {"learning_rate": 0.01, "weight_decay": 0.01},
    "sam": {"learning_rate": 0.003, "beta2": 0.999, "weight_decay": 0.05, "rho": 0.05},
    "shampoo": {"learning_rate": 0.01, "beta2": 0.999, "weight_decay": 0.01},
}


def good_point(algorithm: str) -> tuple:
    """The fixed point, its names in the search space's order (as a trial's namedtuple)."""
    values = {**COMMON, **GOOD_POINTS[algorithm]}
    names = search_space(algorithm).names
    assert set(values) == set(names)
    return tuning.make_hyperparameters({n: values[n] for n in names})


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("algorithm", BASELINES)
def test_baseline_trains_digits_to_its_validation_target(algorithm, framework):
    submission, hyperparameters = load(algorithm, framework), good_point(algorithm)
    workload = import_workload("digits", framework)
    params, model_state = workload.init_model_fn(MODEL_RNG)
    assert space_contains(search_space(algorithm), hyperparameters)
    optimizer_state, result = None, None
    for start in range(0, workload.step_hint, EVAL_EVERY):
        optimizer_state, params, model_state = train(
            submission, workload, hyperparameters, params, model_state, EVAL_EVERY,
            optimizer_state=optimizer_state, first_step=start)
        result = workload.eval_model(1024, params, model_state, STEP_RNG, None, None, start)
        if workload.has_reached_validation_target(result):
            return
    pytest.fail(f"{algorithm} ({framework}) stayed below the target by step_hint: {result}")


def space_contains(space: tuning.SearchSpace, point: tuple) -> bool:
    for dim in space.dimensions:
        value = getattr(point, dim.name)
        if isinstance(dim, tuning.Discrete):
            if value not in dim.feasible_points:
                return False
        elif not dim.min <= value <= dim.max:
            return False
    return True


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("algorithm", BASELINES)
def test_baseline_defines_the_functions_with_the_reference_signatures(algorithm, framework):
    module = load(algorithm, framework).module
    for name in ("get_batch_size", "init_optimizer_state", "update_params",
                 "prepare_for_eval", "data_selection"):
        actual = inspect.signature(getattr(module, name)).parameters
        assert list(actual) == list(inspect.signature(getattr(spec, name)).parameters), name


@pytest.mark.parametrize("algorithm", BASELINES)
def test_search_space_names_every_hyperparameter_the_code_reads(algorithm):
    space = search_space(algorithm)
    point = RecordingHyperparameters(central_point(space))
    workload = import_workload("digits", "pytorch")
    model, model_state = workload.init_model_fn(MODEL_RNG)
    train(load(algorithm, "pytorch"), workload, point, model, model_state, num_steps=1)
    assert point.read - OPTIONAL_HYPERPARAMETERS <= set(space.names)
    assert set(space.names) - point.read <= {"label_smoothing"}  # read with a default


@pytest.mark.parametrize("algorithm", BASELINES)
def test_jax_and_pytorch_versions_take_the_same_steps(algorithm):
    results = train_both_frameworks(algorithm)
    for framework in FRAMEWORKS:  # at the space's centre the warmup is slow: a fall, not 20%
        assert results[framework]["after"] < results[framework]["before"]
    for layer, leaves in results["jax"]["params"].items():
        for name, value in leaves.items():
            np.testing.assert_allclose(value, results["pytorch"]["params"][layer][name],
                                       rtol=0, atol=1e-3, err_msg=f"{layer}/{name}")


# --- the hand-written PyTorch optimizers against optax ---------------------------------------

SHAPES = [(200, 300), (300,), (5, 7), (130, 2, 140)]  # factored, vector, small, 3-D factored


def run_optax(optimizer: optax.GradientTransformation, starts, grads) -> list[np.ndarray]:
    params = [jnp.asarray(x) for x in starts]
    state = optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update([jnp.asarray(x) for x in g], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p) for p in params]


def run_torch(make, starts, grads) -> list[np.ndarray]:
    params = [torch.nn.Parameter(torch.tensor(x)) for x in starts]
    optimizer = make(params)
    for g in grads:
        for p, x in zip(params, g, strict=True):
            p.grad = torch.tensor(x)
        optimizer.step()
    return [p.detach().numpy() for p in params]


@pytest.fixture(scope="module")
def gradients():
    rng = np.random.RandomState(0)
    starts = [rng.randn(*s).astype(np.float32) for s in SHAPES]
    grads = [[(rng.randn(*s) * 10 ** rng.uniform(-3, 0)).astype(np.float32) for s in SHAPES]
             for _ in range(12)]
    return starts, grads


def assert_moved_alike(expected, actual, starts) -> None:
    for e, a, s in zip(expected, actual, starts, strict=True):
        assert np.abs(e - s).max() > 1e-3  # the step is large enough to tell rules apart
        np.testing.assert_allclose(a, e, rtol=0, atol=5e-6)


def test_pytorch_lamb_computes_optax_lamb(gradients):
    starts, grads = gradients
    expected = run_optax(optax.lamb(1e-2, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1),
                         starts, grads)
    lamb = load("lamb", "pytorch").module.LAMB
    actual = run_torch(lambda ps: lamb(ps, lr=1e-2, betas=(0.9, 0.99), eps=1e-8,
                                       weight_decay=0.1), starts, grads)
    assert_moved_alike(expected, actual, starts)


def test_pytorch_adafactor_computes_the_jax_versions_optax_chain(gradients):
    starts, grads = gradients
    expected = run_optax(load("adafactor", "jax").module.adafactor(1e-2, 0.9, 0.1),
                         starts, grads)
    adafactor = load("adafactor", "pytorch").module.Adafactor
    actual = run_torch(lambda ps: adafactor(ps, lr=1e-2, beta1=0.9, weight_decay=0.1),
                       starts, grads)
    assert_moved_alike(expected, actual, starts)


def test_adafactor_second_moment_decay_is_adams_bias_corrected_average():
    # With beta2's bias-corrected average folded into the rate, the factored statistic after
    # t steps is sum_i beta2^(t-i) (1 - beta2) g_i^2 / (1 - beta2^t), as Adam's v_hat.
    decay = load("adafactor", "jax").module.adam_decay_rate
    beta2, squares = 0.99, np.array([4.0, 1.0, 9.0, 0.25])
    v = 0.0
    for step, g2 in enumerate(squares):
        d = float(decay(jnp.asarray(step), beta2))
        v = d * v + (1 - d) * g2
    t = len(squares)
    weights = beta2 ** np.arange(t - 1, -1, -1) * (1 - beta2) / (1 - beta2**t)
    np.testing.assert_allclose(v, float(weights @ squares), rtol=1e-5)


def test_sam_ascends_along_the_normalised_gradient_before_the_adamw_step():
    # On f(p) = sum(p^3) the second gradient is taken at p + rho g / ||g||; the step is AdamW's
    # first step with that gradient (bias-corrected: lr * sign-like g_adv / (|g_adv| + eps)).
    p0 = np.array([1.0, -2.0, 0.5], np.float32)
    g = 3 * p0**2
    adversarial = p0 + 0.05 * g / np.linalg.norm(g)
    g_adv = 3 * adversarial**2
    expected = p0 - 0.1 * g_adv / (np.abs(g_adv) + 1e-8)
    module = load("sam", "jax").module
    optimizer = optax.adamw(0.1, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)

    class Cubic:  # the slice of the workload API the JAX step reads
        def model_fn(self, p, batch, model_state, mode, rng, update_batch_norm, dropout_rate):
            return p, None

        def loss_fn(self, label_batch, logits_batch, mask_batch, label_smoothing):
            return {"summed": jnp.sum(logits_batch**3), "n_valid_examples": 1.0}

    _, params, *_ = module._train_step(Cubic(), optimizer.update, None, 0.0, 0.0, 0.05,
                                       optimizer.init(jnp.asarray(p0)), jnp.asarray(p0), None,
                                       {"targets": None}, None)
    np.testing.assert_allclose(np.asarray(params), expected, rtol=1e-5)


def test_pytorch_shampoo_computes_the_jax_version_through_preconditioning():
    # 130 steps: the grafted step alone, then the preconditioners computed at steps 101 and
    # 121 (Distributed Shampoo's counts 100 and 120). (5, 4, 3) is merged into a 60-vector,
    # (3, 3, 16, 300) into a (144, 300) matrix, (1500, 20) is cut into blocks of 1024 and 476
    # rows, and the 5000-vector (a dimension over 4096) keeps the grafted step throughout.
    # Every statistic here has full rank by step 101: the root of a rank-deficient one (a
    # 1-D block over 130 gradients) is float32 round-off of the eigendecomposition, which
    # differs between JAX and PyTorch by ~5e-3 in the parameters.
    rng = np.random.RandomState(1)
    shapes = [(5, 4, 3), (40,), (3, 3, 16, 300), (1500, 20), (5000,)]
    starts = [rng.randn(*s).astype(np.float32) for s in shapes]
    grads = [[(rng.randn(*s) * 10 ** rng.uniform(-0.5, 0)).astype(np.float32) for s in shapes]
             for _ in range(130)]
    jax_module = load("shampoo", "jax").module
    optimizer = jax_module.shampoo(optax.constant_schedule(1e-2), 0.9, 0.99, 0.01)
    params = [jnp.asarray(x) for x in starts]
    state, update = optimizer.init(params), jax.jit(optimizer.update)
    for g in grads:
        updates, state = update([jnp.asarray(x) for x in g], state, params)
        params = optax.apply_updates(params, updates)
    sides = [[q.shape[0] for q in qs] for qs in state.preconditioners]
    assert sides == [[60], [40], [144, 300], [1024, 20, 476, 20], []]
    for q in state.preconditioners[3]:  # every block's roots computed
        assert np.abs(np.asarray(q) - np.eye(q.shape[0])).max() > 1e-2
    shampoo = load("shampoo", "pytorch").module.Shampoo
    actual = run_torch(lambda ps: shampoo(ps, lr=1e-2, beta1=0.9, beta2=0.99,
                                          weight_decay=0.01), starts, grads)
    for e, a, s in zip(params, actual, starts, strict=True):
        assert np.abs(np.asarray(e) - s).max() > 1e-3
        np.testing.assert_allclose(a, np.asarray(e), rtol=0, atol=1e-5)


def test_shampoo_merges_small_dimensions_and_blocks_large_ones_as_distributed_shampoo():
    module = load("shampoo", "jax").module
    assert module.merged_shape((3, 3, 64, 128)) == (576, 128)
    assert module.merged_shape((1, 2, 768, 1, 2048)) == (1536, 2048)
    assert module.merged_shape((1, 1)) == (1,)
    assert module.block_sizes((2500, 300)) == [[1024, 1024, 452], [300]]
    assert not module.preconditioned((32_128, 1024)) and not module.preconditioned(())
    x = jnp.arange(2500 * 3, dtype=jnp.float32).reshape(2500, 3)
    blocks = module.partition(x, module.block_sizes(x.shape))
    assert [b.shape for b in blocks] == [(1024, 3), (1024, 3), (452, 3)]
    np.testing.assert_array_equal(module.merge_partitions(blocks, module.block_sizes(x.shape)), x)
    torch_module = load("shampoo", "pytorch").module
    for shape in [(3, 3, 64, 128), (1, 2, 768, 1, 2048), (2500, 300), (7,)]:
        assert torch_module.merged_shape(shape) == module.merged_shape(shape)
        assert torch_module.block_sizes(shape) == module.block_sizes(shape)
