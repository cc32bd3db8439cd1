"""Nesterov momentum SGD with linear warmup and decay in PyTorch: AlgoPerf's paper baseline.

The learning rate rises linearly from 0 over ``warmup_steps = warmup_factor * step_hint`` steps,
then falls linearly to ``end_factor * learning_rate`` over ``decay_steps_factor * (step_hint -
warmup_steps)`` steps and stays there. The momentum is ``1 - one_minus_beta1``. Weight decay is
L2 regularisation (``torch.optim.SGD``'s ``weight_decay``: ``weight_decay * param`` joins the
gradient before the momentum). Optional hyperparameters: ``grad_clip`` (global-norm clipping)
and ``label_smoothing``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed.nn as dist_nn
from torch.optim.lr_scheduler import LambdaLR

from algoperf import spec

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


def warmup_linear_decay(
    warmup_factor: float, decay_steps_factor: float, end_factor: float, step_hint: int
) -> Callable[[int], float]:
    """Learning-rate factor per step: linear from 0 to 1 over the warmup, then linear to
    ``end_factor`` over the decay steps, constant after (the optax schedule of the JAX
    version, in plain Python)."""
    warmup_steps = int(warmup_factor * step_hint)
    decay_steps = int((step_hint - warmup_steps) * decay_steps_factor)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        if decay_steps <= 0:
            return 1.0
        progress = min(step - warmup_steps, decay_steps) / decay_steps
        return 1.0 - (1.0 - end_factor) * progress

    return factor


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    """``{'optimizer', 'scheduler'}``: both have state_dict(), so both are checkpointed."""
    del model_state, rng
    hp = hyperparameters
    optimizer = torch.optim.SGD(
        model_params.parameters(),
        lr=hp.learning_rate,
        momentum=1.0 - hp.one_minus_beta1,
        weight_decay=hp.weight_decay,
        nesterov=True,
    )
    scheduler = LambdaLR(
        optimizer,
        warmup_linear_decay(hp.warmup_factor, hp.decay_steps_factor, hp.end_factor,
                            workload.step_hint),
    )
    return {"optimizer": optimizer, "scheduler": scheduler}


def _is_log_step(global_step: int) -> bool:
    """AlgoPerf's PyTorch baselines log the first 100 steps, then every 500th."""
    return global_step <= 100 or global_step % 500 == 0


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
    """One SGD step; reads loss and grad norm back only on logging steps."""
    del current_params_types, loss_type, eval_results, train_state
    model = current_param_container
    optimizer = optimizer_state["optimizer"]
    optimizer.zero_grad(set_to_none=True)
    logits, new_model_state = workload.model_fn(
        params=model,
        augmented_and_preprocessed_input_batch=batch,
        model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN,
        rng=rng,
        update_batch_norm=True,
        dropout_rate=hyperparameters.dropout_rate,
    )
    losses = workload.loss_fn(
        label_batch=batch["targets"],
        logits_batch=logits,
        mask_batch=batch.get("weights"),
        label_smoothing=getattr(hyperparameters, "label_smoothing", 0.0),
    )
    summed, n_valid = losses["summed"], losses["n_valid_examples"]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Differentiable all-reduce: the loss and its gradients are those of the global batch.
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    loss = summed / n_valid
    loss.backward()

    grad_clip = getattr(hyperparameters, "grad_clip", None)
    grad_norm = None
    if grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
    optimizer.step()
    optimizer_state["scheduler"].step()

    if workload.metrics_logger is not None and _is_log_step(global_step):
        if grad_norm is None:
            grad_norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(p.grad) for p in model.parameters()
                 if p.grad is not None]))
        workload.metrics_logger.append_scalar_metrics(
            {"loss": loss.item(), "grad_norm": grad_norm.item()}, global_step
        )
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
