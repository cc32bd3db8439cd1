"""Adafactor with momentum, linear warmup and cosine decay in PyTorch: AlgoPerf's paper
baseline.

`Adafactor` below computes the JAX version's rule: factored second moments (rows and columns
of arrays whose two largest dimensions are at least 128), each array's update clipped to RMS
1, momentum ``beta1 = 1 - one_minus_beta1`` over it, decoupled weight decay (``lr * wd``),
then the learning rate, which rises linearly from 0 over ``warmup_factor * step_hint`` steps,
then follows a cosine to 0 at ``step_hint``. Optional hyperparameters: ``grad_clip``
(global-norm clipping) and ``label_smoothing``.
"""

from __future__ import annotations

import math
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


SECOND_MOMENT_DECAY = 0.99  # AlgoPerf's sharded Adafactor's decay_adam


class Adafactor(torch.optim.Optimizer):
    """Adafactor with momentum as the JAX version chains optax's pieces, in AlgoPerf's order.

    Per parameter array: the second moment of ``g^2 + eps`` is kept as row and column means
    over its two largest dimensions when the smaller of them is at least
    ``min_dim_size_to_factor`` (else in full), decaying at Adam's bias-corrected rate
    ``beta2 (1 - beta2^(t-1)) / (1 - beta2^t)``; the scaled gradient is clipped to RMS
    ``clipping_threshold``; momentum ``beta1`` (not debiased) follows, then decoupled weight
    decay, then the learning rate. ``torch.optim.Adafactor`` has no momentum (the search space
    tunes beta1) and takes relative steps, so it is another algorithm; AlgoPerf's PyTorch
    baseline is written by hand too. tests/test_baselines.py holds this one to the JAX
    version's optax chain.
    """

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9,
                 weight_decay: float = 0.0, clipping_threshold: float = 1.0,
                 eps: float = 1e-30, min_dim_size_to_factor: int = 128) -> None:
        super().__init__(params, {"lr": lr, "beta1": beta1, "weight_decay": weight_decay,
                                  "clipping_threshold": clipping_threshold, "eps": eps,
                                  "min_dim_size_to_factor": min_dim_size_to_factor})

    @staticmethod
    def factored_dims(shape: torch.Size, min_dim: int) -> tuple[int, int] | None:
        """(second largest, largest) dimension, when both are at least ``min_dim``."""
        if len(shape) < 2:
            return None
        order = sorted(range(len(shape)), key=lambda d: (shape[d], d))
        if shape[order[-2]] < min_dim:
            return None
        return order[-2], order[-1]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                dims = self.factored_dims(p.shape, group["min_dim_size_to_factor"])
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["momentum"] = torch.zeros_like(p)
                    if dims is None:
                        state["v"] = torch.zeros_like(p)
                    else:
                        state["v_row"] = torch.zeros_like(p).mean(dim=dims[1])
                        state["v_col"] = torch.zeros_like(p).mean(dim=dims[0])
                t = state["step"].item() + 1.0
                beta2 = SECOND_MOMENT_DECAY
                decay = beta2 * (1.0 - beta2 ** (t - 1.0)) / (1.0 - beta2**t)
                g_sq = g * g + group["eps"]
                if dims is None:
                    state["v"].mul_(decay).add_(g_sq, alpha=1 - decay)
                    update = g * state["v"].rsqrt()
                else:
                    d1, d0 = dims
                    v_row, v_col = state["v_row"], state["v_col"]
                    v_row.mul_(decay).add_(g_sq.mean(dim=d0), alpha=1 - decay)
                    v_col.mul_(decay).add_(g_sq.mean(dim=d1), alpha=1 - decay)
                    reduced_d1 = d1 - 1 if d1 > d0 else d1
                    row = (v_row / v_row.mean(dim=reduced_d1, keepdim=True)).rsqrt()
                    update = g * row.unsqueeze(d0) * v_col.rsqrt().unsqueeze(d1)
                rms = update.square().mean().sqrt()
                update = update / torch.clamp(rms / group["clipping_threshold"], min=1.0)
                state["momentum"].lerp_(update, 1 - group["beta1"])
                step = state["momentum"] + group["weight_decay"] * p
                p.sub_(group["lr"] * step)
                state["step"] += 1


def warmup_cosine(warmup_factor: float, step_hint: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear from 0 to 1 over the warmup, cosine to 0 at
    ``step_hint``, 0 after (the optax schedule of the JAX version, in plain Python)."""
    warmup_steps = int(warmup_factor * step_hint)
    cosine_steps = max(step_hint - warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        progress = min(step - warmup_steps, cosine_steps) / cosine_steps
        return 0.5 * (1.0 + math.cos(math.pi * progress))

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
    optimizer = Adafactor(
        model_params.parameters(),
        lr=hp.learning_rate,
        beta1=1.0 - hp.one_minus_beta1,
        weight_decay=hp.weight_decay,
    )
    scheduler = LambdaLR(optimizer, warmup_cosine(hp.warmup_factor, workload.step_hint))
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
    """One Adafactor step; reads loss and grad norm back only on logging steps."""
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
