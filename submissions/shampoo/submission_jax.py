"""Distributed Shampoo with grafting, linear warmup and cosine decay in JAX: AlgoPerf's
paper baseline.

Shampoo (Gupta et al., 2018) preconditions each parameter array along every dimension with
the inverse root of that dimension's gradient statistic; Distributed Shampoo (Anil et al.,
2020) first merges small dimensions and cuts large ones into blocks of at most 1024, each
block preconditioned on its own (`shampoo` below says what exactly). AlgoPerf's JAX baseline
carries Google's implementation (about 2,500 lines); optax (0.2.2, AlgoPerf v0.6's pin) has no
Shampoo and no well-kept package serves AlgoPerf's JAX stack, so the rule is written here with
that implementation's defaults. Arrays with a dimension over 4096 (embedding tables) take
the grafted step alone, its ``skip_preconditioning_dim_size_gt`` as AlgoPerf's baseline set it
when it turned preconditioning on (4096; the archived copy's 0 would precondition nothing).
Left out: the coupled-Newton root (eigendecomposition instead; a root with a NaN keeps the
old preconditioner, where Distributed Shampoo also rejects roots above an error threshold),
and its sharded and reduced-precision states. The learning rate rises linearly from 0 over
``warmup_factor * step_hint`` steps, then follows a cosine to 0 at ``step_hint``.
``beta1 = 1 - one_minus_beta1``. Optional hyperparameters: ``grad_clip`` (global-norm
clipping) and ``label_smoothing``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
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
    "tabular": 128,
    "charlm": 32,
    "cifar": 128,  # AlgoPerf's development cifar submission
    "finewebedu_lm": 64,  # AlgoPerf v0.6's submissions
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


BLOCK_SIZE = 1024  # Distributed Shampoo's block_size: the largest preconditioner dimension
MERGE_DIMS_SIZE = 4096  # its merge_small_dims_block_size
SKIP_DIM_SIZE = 4096  # arrays with a larger dimension are not preconditioned (see the README)
START_PRECONDITIONING_STEP = 101  # its defaults, as in AlgoPerf's baseline
PRECONDITIONING_COMPUTE_STEPS = 20
MATRIX_EPS = 1e-6  # relative to the largest eigenvalue of the statistic
DIAGONAL_EPS = 1e-8
_NORM_EPS = 1e-16


class ShampooState(NamedTuple):
    count: jax.Array
    stats: Any  # per array: one (n, n) statistic per block and dimension, block-major
    preconditioners: Any  # per array: their inverse roots, in the same order
    graft: Any  # per array: the RMSprop second moment of the normalised gradient
    graft_momentum: Any  # per array: the momentum of the grafted step
    momentum: Any  # per array: the momentum of the Shampoo step


def merged_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Distributed Shampoo's best-effort shape interpretation: neighbouring dimensions merged
    while their product stays <= MERGE_DIMS_SIZE, size-1 dimensions dropped (a (3, 3, 64, 128)
    kernel is preconditioned as (576, 128), a (30, 40) matrix as one 1200-vector)."""
    if shape and all(n == 1 for n in shape):
        return (1,)
    merged, product = [], 1
    for n in shape:
        if product * n <= MERGE_DIMS_SIZE:
            product *= n
        else:
            if product > 1:
                merged.append(product)
            product = n
    if product > 1:
        merged.append(product)
    return tuple(merged)


def preconditioned(shape: tuple[int, ...]) -> bool:
    """Arrays of rank >= 1 with no dimension over SKIP_DIM_SIZE are preconditioned; the
    others (embedding tables) take the grafted step alone."""
    return len(shape) >= 1 and all(n <= SKIP_DIM_SIZE for n in shape)


def block_sizes(shape: tuple[int, ...]) -> list[list[int]]:
    """Per dimension of the merged shape, the sizes of its blocks: BLOCK_SIZE each, the last
    one the remainder (Distributed Shampoo's blocking)."""
    sizes = []
    for n in merged_shape(shape):
        full, rest = divmod(n, BLOCK_SIZE)
        sizes.append([BLOCK_SIZE] * full + ([rest] if rest else []))
    return sizes


def statistic_sizes(shape: tuple[int, ...]) -> list[int]:
    """The side of each statistic of an array: per block (row-major over the blocks), per
    dimension."""
    return [n for block in itertools.product(*block_sizes(shape)) for n in block]


def partition(x: jax.Array, sizes: list[list[int]]) -> list[jax.Array]:
    """``x`` (of the merged shape) cut into its blocks, row-major over the block grid."""
    blocks = [x]
    for axis, dim_sizes in enumerate(sizes):
        if len(dim_sizes) > 1:
            cuts = list(itertools.accumulate(dim_sizes))[:-1]
            blocks = [part for b in blocks for part in jnp.split(b, cuts, axis=axis)]
    return blocks


def merge_partitions(blocks: list[jax.Array], sizes: list[list[int]]) -> jax.Array:
    """The inverse of `partition`."""
    for axis in reversed(range(len(sizes))):
        n = len(sizes[axis])
        if n > 1:
            blocks = [jnp.concatenate(blocks[i:i + n], axis=axis)
                      for i in range(0, len(blocks), n)]
    return blocks[0]


def inverse_root(statistic: jax.Array, root: int) -> jax.Array:
    """``(statistic + eps * max_eigenvalue * I) ** (-1 / root)`` by eigendecomposition."""
    eigenvalues, vectors = jnp.linalg.eigh(statistic)
    reg = MATRIX_EPS * jnp.maximum(jnp.max(eigenvalues), 1e-30)
    scaled = (jnp.maximum(eigenvalues, 0.0) + reg) ** (-1.0 / root)
    return (vectors * scaled) @ vectors.T


def precondition(g: jax.Array, preconditioners: Sequence[jax.Array]) -> jax.Array:
    """``g`` multiplied along each dimension by that dimension's preconditioner."""
    for p in preconditioners:  # contracting axis 0 and appending: k steps restore the order
        g = jnp.tensordot(g, p, axes=[[0], [0]])
    return g


def shampoo(learning_rate: optax.Schedule, beta1: float, beta2: float,
            weight_decay: float) -> optax.GradientTransformation:
    """Distributed Shampoo with the defaults of AlgoPerf's baseline, on one device.

    Each array is reshaped by `merged_shape` and cut into blocks of at most BLOCK_SIZE per
    dimension; each block keeps a statistic ``G G^T`` per dimension (from ``eps * I``, averaged
    with ``beta2``) and its inverse ``2k``-th root (``k`` the merged rank), recomputed every 20
    steps. The preconditioned blocks, put back together, are scaled to the norm of an RMSprop
    step on the normalised gradient (grafting); weight decay is added, and each of the two
    steps keeps its Nesterov momentum (a moving average ``beta1``). Before step 101 the grafted
    step is taken, after it the Shampoo one; then the learning rate.
    """

    def init(params):
        def stats(p):
            return tuple(MATRIX_EPS * jnp.eye(n, dtype=p.dtype)
                         for n in statistic_sizes(p.shape)) if preconditioned(p.shape) else ()

        def eye(p):
            return tuple(jnp.eye(n, dtype=p.dtype)
                         for n in statistic_sizes(p.shape)) if preconditioned(p.shape) else ()

        return ShampooState(jnp.zeros([], jnp.int32), jax.tree.map(stats, params),
                            jax.tree.map(eye, params),
                            *(jax.tree.map(jnp.zeros_like, params) for _ in range(3)))

    def update(grads, state, params):
        count = state.count  # Distributed Shampoo's step: 0 at the first update
        recompute = (count % PRECONDITIONING_COMPUTE_STEPS == 0) & (
            count + PRECONDITIONING_COMPUTE_STEPS > START_PRECONDITIONING_STEP)
        use_shampoo = count >= START_PRECONDITIONING_STEP
        lr = learning_rate(count)

        def one(g, p, stats, preconditioners, v, graft_m, m):
            normalised = g / (jnp.linalg.norm(g) + _NORM_EPS)
            v = beta2 * v + (1 - beta2) * jnp.square(normalised)
            graft = normalised / (jnp.sqrt(v) + DIAGONAL_EPS)
            direction = graft
            if stats:
                sizes = block_sizes(g.shape)
                blocks = partition(g.reshape(merged_shape(g.shape)), sizes)
                rank = len(sizes)
                new_stats = []
                for i, block in enumerate(blocks):
                    for d in range(rank):
                        axes = [a for a in range(rank) if a != d]
                        new_stats.append(beta2 * stats[i * rank + d] + (1 - beta2)
                                         * jnp.tensordot(block, block, axes=[axes, axes]))
                stats = tuple(new_stats)

                def roots():
                    new = tuple(inverse_root(s, 2 * rank) for s in stats)
                    # A failed root (NaN) keeps the old preconditioner, as Distributed
                    # Shampoo keeps one whose root failed its error check.
                    return tuple(jnp.where(jnp.all(jnp.isfinite(n)), n, old)
                                 for n, old in zip(new, preconditioners, strict=True))

                preconditioners = jax.lax.cond(recompute, roots, lambda: preconditioners)
                direction = merge_partitions(
                    [precondition(block, preconditioners[i * rank:(i + 1) * rank])
                     for i, block in enumerate(blocks)], sizes).reshape(g.shape)
            shampoo_step = direction * (jnp.linalg.norm(graft)
                                        / (jnp.linalg.norm(direction) + _NORM_EPS))
            shampoo_step = shampoo_step + weight_decay * p
            graft_step = graft + weight_decay * p
            m = beta1 * m + (1 - beta1) * shampoo_step
            graft_m = beta1 * graft_m + (1 - beta1) * graft_step
            step, momentum = jnp.where(use_shampoo, shampoo_step, graft_step), \
                jnp.where(use_shampoo, m, graft_m)
            return (-lr * ((1 - beta1) * step + beta1 * momentum), stats, preconditioners, v,
                    graft_m, m)

        treedef = jax.tree.structure(grads)
        flat = [treedef.flatten_up_to(t) for t in (
            grads, params, state.stats, state.preconditioners, state.graft,
            state.graft_momentum, state.momentum)]
        out = [one(*args) for args in zip(*flat, strict=True)]
        unflat = [jax.tree.unflatten(treedef, [o[i] for o in out]) for i in range(6)]
        return unflat[0], ShampooState(count + 1, *unflat[1:])

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
