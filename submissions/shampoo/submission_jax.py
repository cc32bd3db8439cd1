"""Shampoo with grafting, linear warmup and cosine decay in JAX: AlgoPerf's paper baseline.

Shampoo (Gupta et al., 2018; Anil et al., 2020) preconditions each parameter array along every
dimension with the inverse root of that dimension's gradient statistic (`shampoo` below says
what exactly). AlgoPerf's JAX baseline carries Google's Distributed Shampoo (about 2,500 lines);
optax (0.2.2, AlgoPerf v0.6's pin) has no Shampoo and no well-kept package serves AlgoPerf's
JAX stack, so the rule is written here with that implementation's defaults. Left out: blocking
(arrays with a dimension over 1024 take the grafted step alone), merging small dimensions,
the coupled-Newton root (eigendecomposition instead) and sharded states. The learning rate
rises linearly from 0 over ``warmup_factor * step_hint`` steps, then follows a cosine to 0 at
``step_hint``. ``beta1 = 1 - one_minus_beta1``. Optional hyperparameters: ``grad_clip``
(global-norm clipping) and ``label_smoothing``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from algoperf import jax_sharding_utils, spec

_GRAD_CLIP_EPS = 1e-6
_LOG_EVERY_STEPS = 100  # AlgoPerf's JAX baselines log loss and grad norm this often

_BATCH_SIZES = {
    "criteo1tb": 262_144,
    "fastmri": 32,
    "imagenet_resnet": 1024,
    "imagenet_resnet_silu": 512,
    "imagenet_resnet_gelu": 512,
    "imagenet_vit": 1024,
    "librispeech_conformer": 256,
    "librispeech_deepspeech": 256,
    "ogbg": 512,
    "wmt": 128,
    "mnist": 16,
    "digits": 64,
    "mnist1d": 128,
    "charlm": 32,
}


def get_batch_size(workload_name: str) -> int:
    """AlgoPerf's baseline batch sizes; ValueError sends the runner to the base workload."""
    try:
        return _BATCH_SIZES[workload_name]
    except KeyError:
        raise ValueError(f"no batch size for workload {workload_name!r}") from None


def warmup_cosine_schedule(
    learning_rate: float, warmup_factor: float, step_hint: int
) -> optax.Schedule:
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to 0 at ``step_hint``."""
    warmup_steps = int(warmup_factor * step_hint)
    return optax.join_schedules(
        schedules=[
            optax.linear_schedule(0.0, learning_rate, warmup_steps),
            optax.cosine_decay_schedule(learning_rate, max(step_hint - warmup_steps, 1)),
        ],
        boundaries=[warmup_steps],
    )


BLOCK_SIZE = 1024  # Distributed Shampoo's default block size
START_PRECONDITIONING_STEP = 101  # its defaults, as in AlgoPerf's baseline
PRECONDITIONING_COMPUTE_STEPS = 20
MATRIX_EPS = 1e-6  # relative to the largest eigenvalue of the statistic
DIAGONAL_EPS = 1e-8
_NORM_EPS = 1e-16


class ShampooState(NamedTuple):
    count: jax.Array
    stats: Any  # per array: a tuple of one (n, n) statistic per dimension
    preconditioners: Any  # per array: a tuple of (n, n) inverse roots
    graft: Any  # per array: the RMSprop second moment of the normalised gradient
    momentum: Any


def preconditioned(shape: tuple[int, ...]) -> bool:
    """Shampoo preconditions arrays of rank >= 1 whose dimensions are all <= BLOCK_SIZE; the
    others take the grafted (RMSprop) step alone."""
    return len(shape) >= 1 and all(n <= BLOCK_SIZE for n in shape)


def inverse_root(statistic: jax.Array, root: int) -> jax.Array:
    """``(statistic + eps * max_eigenvalue * I) ** (-1 / root)`` by eigendecomposition."""
    eigenvalues, vectors = jnp.linalg.eigh(statistic)
    reg = MATRIX_EPS * jnp.maximum(jnp.max(eigenvalues), 1e-30)
    scaled = (jnp.maximum(eigenvalues, 0.0) + reg) ** (-1.0 / root)
    return (vectors * scaled) @ vectors.T


def precondition(g: jax.Array, preconditioners: tuple[jax.Array, ...]) -> jax.Array:
    """``g`` multiplied along each dimension by that dimension's preconditioner."""
    for p in preconditioners:  # contracting axis 0 and appending: k steps restore the order
        g = jnp.tensordot(g, p, axes=[[0], [0]])
    return g


def shampoo(learning_rate: optax.Schedule, beta1: float, beta2: float,
            weight_decay: float) -> optax.GradientTransformation:
    """Shampoo after Distributed Shampoo's defaults in AlgoPerf's baseline: statistics ``G G^T``
    per dimension averaged with ``beta2``, inverse ``2k``-th roots (``k`` the rank) recomputed
    every 20 steps from step 101, the direction scaled to the norm of an RMSprop step on the
    normalised gradient (grafting; that step alone before step 101), weight decay added to the
    update, Nesterov momentum with a moving average ``beta1``, then the learning rate."""

    def init(params):
        def stats(p):
            return tuple(jnp.zeros((n, n), p.dtype) for n in p.shape) \
                if preconditioned(p.shape) else ()

        def eye(p):
            return tuple(jnp.eye(n, dtype=p.dtype) for n in p.shape) \
                if preconditioned(p.shape) else ()

        return ShampooState(jnp.zeros([], jnp.int32), jax.tree.map(stats, params),
                            jax.tree.map(eye, params), jax.tree.map(jnp.zeros_like, params),
                            jax.tree.map(jnp.zeros_like, params))  # two buffers, both donated

    def update(grads, state, params):
        step = state.count + 1
        recompute = (step >= START_PRECONDITIONING_STEP) & (
            (step - START_PRECONDITIONING_STEP) % PRECONDITIONING_COMPUTE_STEPS == 0)
        use_shampoo = step >= START_PRECONDITIONING_STEP
        lr = learning_rate(state.count)

        def one(g, p, stats, preconditioners, v, m):
            normalised = g / (jnp.linalg.norm(g) + _NORM_EPS)
            v = beta2 * v + (1 - beta2) * jnp.square(normalised)
            graft = normalised / (jnp.sqrt(v) + DIAGONAL_EPS)
            u = graft
            if stats:
                axes = range(g.ndim)
                stats = tuple(
                    beta2 * s + (1 - beta2) * jnp.tensordot(
                        g, g, axes=[[a for a in axes if a != d]] * 2)
                    for d, s in enumerate(stats))
                preconditioners = jax.lax.cond(
                    recompute,
                    lambda: tuple(inverse_root(s, 2 * g.ndim) for s in stats),
                    lambda: preconditioners)
                direction = precondition(g, preconditioners)
                scaled = direction * (jnp.linalg.norm(graft)
                                      / (jnp.linalg.norm(direction) + _NORM_EPS))
                u = jnp.where(use_shampoo, scaled, graft)
            u = u + weight_decay * p
            m = beta1 * m + (1 - beta1) * u
            return -lr * (beta1 * m + (1 - beta1) * u), stats, preconditioners, v, m

        treedef = jax.tree.structure(grads)
        leaves = [jax.tree.leaves(t, is_leaf=lambda x: isinstance(x, tuple))
                  for t in (grads, params, state.stats, state.preconditioners, state.graft,
                            state.momentum)]
        out = [one(*args) for args in zip(*leaves, strict=True)]
        unflat = [jax.tree.unflatten(treedef, [o[i] for o in out]) for i in range(5)]
        return unflat[0], ShampooState(step, *unflat[1:])

    return optax.GradientTransformation(init, update)


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    """``(opt_state, update_fn)``: the pair AlgoPerf's JAX checkpointing expects."""
    del model_state, rng
    hp = hyperparameters
    optimizer = shampoo(
        warmup_cosine_schedule(hp.learning_rate, hp.warmup_factor, workload.step_hint),
        beta1=1.0 - hp.one_minus_beta1,
        beta2=hp.beta2,
        weight_decay=hp.weight_decay,
    )
    # Replicated like the params, so the jitted step sees one input sharding from the start
    # (an uncommitted optimizer state would make its second call compile again).
    return jax_sharding_utils.replicate(optimizer.init(model_params)), optimizer.update


def global_norm(tree) -> jax.Array:
    """The l2 norm of all of ``tree``'s leaves together (AlgoPerf's baselines' grad norm)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


def _train_step(workload, opt_update_fn, grad_clip, label_smoothing, dropout_rate,
                opt_state, params, model_state, batch, rng):
    """One step on the mean loss of ``batch``; returns new states, loss and grad norm."""

    def mean_loss(p):
        logits, new_model_state = workload.model_fn(
            p, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
            update_batch_norm=True, dropout_rate=dropout_rate,
        )
        losses = workload.loss_fn(
            label_batch=batch["targets"], logits_batch=logits,
            mask_batch=batch.get("weights"), label_smoothing=label_smoothing,
        )
        n_valid = losses["n_valid_examples"]
        return losses["summed"] / n_valid, new_model_state

    (loss, new_model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    grad_norm = global_norm(grads)
    if grad_clip is not None:
        scale = jnp.minimum(1.0, grad_clip / (grad_norm + _GRAD_CLIP_EPS))
        grads = jax.tree.map(lambda g: g * scale, grads)
    updates, new_opt_state = opt_update_fn(grads, opt_state, params)
    return new_opt_state, optax.apply_updates(params, updates), new_model_state, loss, grad_norm


@functools.cache
def _jitted_train_step():
    """The compiled step: state replicated, batch split along its first axis, old state donated.

    Built on first use so the device mesh is the one in place when training starts.
    """
    replicated = jax_sharding_utils.get_replicate_sharding()
    batch_sharded = jax_sharding_utils.get_batch_dim_sharding()
    return jax.jit(
        _train_step,
        static_argnums=(0, 1, 2, 3, 4),
        donate_argnums=(5, 6, 7),
        in_shardings=(replicated, replicated, replicated, batch_sharded, replicated),
        out_shardings=replicated,
    )


def update_params(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    batch: dict[str, spec.Tensor],
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results: list[tuple[int, float]],
    global_step: int,
    rng: spec.RandomState,
    train_state: dict[str, Any] | None = None,
) -> spec.UpdateReturn:
    """One Shampoo step; reads loss and grad norm back to the host only on logging steps."""
    del current_params_types, loss_type, eval_results, train_state
    opt_state, opt_update_fn = optimizer_state
    new_opt_state, new_params, new_model_state, loss, grad_norm = _jitted_train_step()(
        workload,
        opt_update_fn,
        getattr(hyperparameters, "grad_clip", None),
        getattr(hyperparameters, "label_smoothing", 0.0),
        hyperparameters.dropout_rate,
        opt_state,
        current_param_container,
        model_state,
        batch,
        rng,
    )
    if workload.metrics_logger is not None and global_step % _LOG_EVERY_STEPS == 0:
        workload.metrics_logger.append_scalar_metrics(
            {"loss": float(loss), "grad_norm": float(grad_norm)}, global_step
        )
    return (new_opt_state, opt_update_fn), new_params, new_model_state


def prepare_for_eval(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results: list[tuple[int, float]],
    global_step: int,
    rng: spec.RandomState,
) -> spec.UpdateReturn:
    """Evaluates the training parameters as they are."""
    return optimizer_state, current_param_container, model_state


def data_selection(
    workload: spec.Workload,
    input_queue: Iterator[dict[str, spec.Tensor]],
    optimizer_state: spec.OptimizerState,
    current_param_container: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    global_step: int,
    rng: spec.RandomState,
) -> dict[str, spec.Tensor]:
    """The next batch of the workload's shuffled training stream."""
    return next(input_queue)
