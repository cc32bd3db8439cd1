"""Plain SGD in PyTorch: the smallest complete AlgoPerf submission (docs/submissions.md).

The optimizer state is a dict of ``torch.optim`` objects (each checkpointed by its
``state_dict()``). Under torchrun the model is already wrapped in DistributedDataParallel and
each rank gets its slice of the batch; the summed loss and the example count are all-reduced
differentiably so the loss is the global batch's mean.
"""

from collections.abc import Iterator

import torch
import torch.distributed.nn as dist_nn

from algoperf import spec

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
    """torch.optim.SGD over the module's parameters at the trial's learning rate."""
    del workload, model_state, rng
    if hyperparameters is None:
        learning_rate = SELF_TUNING_LEARNING_RATE
    else:
        learning_rate = hyperparameters.learning_rate
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=learning_rate)}


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
    """One SGD step on the mean loss of the (global) batch."""
    del current_params_types, hyperparameters, loss_type, eval_results, global_step
    model = current_param_container
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad(set_to_none=True)
    logits, new_model_state = workload.model_fn(
        model, batch, model_state, spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
    losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
    summed, n_valid = losses["summed"], losses["n_valid_examples"]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    (summed / n_valid).backward()
    optimizer.step()
    return optimizer_state, model, new_model_state


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
