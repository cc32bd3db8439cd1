"""NAdamW for the self-tuning ruleset in JAX (optax): AlgoPerf v0.6's self-tuning baseline.

The algorithm of ``submissions/nadamw`` (linear warmup for ``warmup_factor * step_hint`` steps,
cosine decay to 0 at ``step_hint``, decoupled weight decay) with the fixed ``HPARAMS`` below.
The ``hyperparameters`` argument is ignored (it is None under the self-tuning ruleset).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

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

# AlgoPerf's self-tuning NAdamW baseline: one setting for every workload, chosen by its authors.
HPARAMS = collections.namedtuple(
    "Hyperparameters",
    ["dropout_rate", "learning_rate", "one_minus_beta1", "beta2", "weight_decay",
     "warmup_factor"],
)(
    dropout_rate=0.1,
    learning_rate=0.0017486387539278373,
    one_minus_beta1=0.06733926164,
    beta2=0.9955159689799007,
    weight_decay=0.08121616522670176,
    warmup_factor=0.02,
)


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


class ScaleByNadamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_nadam(b1: float, b2: float, eps: float = 1e-8) -> optax.GradientTransformation:
    """NAdam without momentum decay, both momentum terms bias-corrected by ``1 - b1**t``.

    This is the NAdam of AlgoPerf's baseline (arXiv:1910.05446, Table 1):
    ``(b1 * m_t + (1 - b1) * g_t) / (1 - b1**t) / (sqrt(v_t / (1 - b2**t)) + eps)``.
    ``optax.scale_by_adam(nesterov=True)`` corrects the two terms with different powers of
    ``b1``, so it would be a (slightly) different optimizer.
    """

    def init_fn(params: optax.Params) -> ScaleByNadamState:
        return ScaleByNadamState(
            count=jnp.zeros([], jnp.int32),
            mu=otu.tree_zeros_like(params),
            nu=otu.tree_zeros_like(params),
        )

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * g**2 + b2 * v, updates, state.nu)
        count = optax.safe_int32_increment(state.count)
        mu_correction = 1 - b1**count
        nu_correction = 1 - b2**count

        def direction(g, m, v):
            m_hat = (b1 * m + (1 - b1) * g) / mu_correction.astype(m.dtype)
            return m_hat / (jnp.sqrt(v / nu_correction.astype(v.dtype)) + eps)

        return jax.tree.map(direction, updates, mu, nu), ScaleByNadamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def nadamw(
    learning_rate: optax.ScalarOrSchedule, b1: float, b2: float, weight_decay: float
) -> optax.GradientTransformation:
    """NAdam direction plus decoupled weight decay, scaled by the (scheduled) learning rate."""
    return optax.chain(
        scale_by_nadam(b1, b2, eps=1e-8),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    """``(opt_state, update_fn)``: the pair AlgoPerf's JAX checkpointing expects."""
    del model_state, rng, hyperparameters
    hp = HPARAMS
    optimizer = nadamw(
        learning_rate=warmup_cosine_schedule(hp.learning_rate, hp.warmup_factor,
                                             workload.step_hint),
        b1=1.0 - hp.one_minus_beta1,
        b2=hp.beta2,
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
    """One NAdamW step; reads loss and grad norm back to the host only on logging steps."""
    del current_params_types, loss_type, eval_results, train_state, hyperparameters
    hp = HPARAMS
    opt_state, opt_update_fn = optimizer_state
    new_opt_state, new_params, new_model_state, loss, grad_norm = _jitted_train_step()(
        workload,
        opt_update_fn,
        getattr(hp, "grad_clip", None),
        getattr(hp, "label_smoothing", 0.0),
        hp.dropout_rate,
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
