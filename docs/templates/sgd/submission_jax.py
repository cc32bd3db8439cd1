"""Plain SGD in JAX: the smallest complete AlgoPerf submission (docs/submissions.md).

The optimizer state is ``(opt_state, update_fn)``, replicated on every device like the params;
the train step is compiled once per workload and optimizer, with the batch split along its
first axis.
"""

import functools
from collections.abc import Iterator

import jax
import optax

from algoperf import jax_sharding_utils, spec

SELF_TUNING_LEARNING_RATE = 0.1  # used when hyperparameters is None (self-tuning ruleset)


def get_batch_size(workload_name: str) -> int:
    """The global batch size; ValueError makes the runner ask again for the base workload."""
    sizes = {"digits": 64, "mnist": 16, "mnist1d": 128, "tabular": 128, "charlm": 32}
    if workload_name not in sizes:
        raise ValueError(f"no batch size for {workload_name}")
    return sizes[workload_name]


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    """optax SGD at the trial's learning rate."""
    del workload, model_state, rng
    if hyperparameters is None:
        learning_rate = SELF_TUNING_LEARNING_RATE
    else:
        learning_rate = hyperparameters.learning_rate
    optimizer = optax.sgd(learning_rate)
    opt_state = jax_sharding_utils.replicate(optimizer.init(model_params))
    return opt_state, optimizer.update


def _train_step(workload, update_fn, opt_state, params, model_state, batch, rng):
    def mean_loss(p):
        logits, new_model_state = workload.model_fn(
            p, batch, model_state, spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
        losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
        return losses["summed"] / losses["n_valid_examples"], new_model_state

    (_, new_model_state), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    updates, new_opt_state = update_fn(grads, opt_state, params)
    return new_opt_state, optax.apply_updates(params, updates), new_model_state


@functools.cache
def _jitted_train_step():
    """Built on first use, once the device mesh exists; workload and update_fn are static."""
    replicated = jax_sharding_utils.get_replicate_sharding()
    sharded = jax_sharding_utils.get_batch_dim_sharding()
    return jax.jit(
        _train_step,
        static_argnums=(0, 1),
        in_shardings=(replicated, replicated, replicated, sharded, replicated),
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
) -> spec.UpdateReturn:
    """One SGD step on the mean loss of the batch."""
    del current_params_types, hyperparameters, loss_type, eval_results, global_step
    opt_state, update_fn = optimizer_state
    new_opt_state, new_params, new_model_state = _jitted_train_step()(
        workload, update_fn, opt_state, current_param_container, model_state, batch, rng)
    return (new_opt_state, update_fn), new_params, new_model_state


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
    """Evaluates the parameters as they are."""
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
