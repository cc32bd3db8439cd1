"""NAdamW for the self-tuning ruleset in PyTorch: AlgoPerf v0.6's self-tuning baseline.

The algorithm of ``submissions/nadamw`` (linear warmup for ``warmup_factor * step_hint`` steps,
cosine decay to 0 at ``step_hint``, decoupled weight decay) with the fixed ``HPARAMS`` below.
The ``hyperparameters`` argument is ignored (it is None under the self-tuning ruleset).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable, Iterator
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


class NAdamW(torch.optim.Optimizer):
    """NAdam without momentum decay, with decoupled weight decay (AlgoPerf's baseline).

    Per step ``t``: ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``param *= 1 - lr wd``; ``param -= lr (b1 m + (1-b1) g) / (1-b1^t) / (sqrt(v/(1-b2^t)) + eps)``.
    ``torch.optim.NAdam`` applies a momentum-decay schedule to ``b1``, so it differs.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float],
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update_group(group, params)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        b1, b2 = group["betas"]
        grads, mus, nus, steps = [], [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            grads.append(p.grad)
            mus.append(state["exp_avg"])
            nus.append(state["exp_avg_sq"])
            steps.append(state["step"])

        # Multi-tensor ops (torch.optim's own fast path): one call per operation per group.
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
        torch._foreach_lerp_(mus, grads, 1.0 - b1)
        torch._foreach_mul_(nus, b2)
        torch._foreach_addcmul_(nus, grads, grads, value=1.0 - b2)
        nesterov_mus = torch._foreach_lerp(grads, mus, b1)  # b1 m + (1 - b1) g
        denoms = torch._foreach_sqrt(nus)
        torch._foreach_div_(denoms, [math.sqrt(1.0 - b2**t) for t in steps])
        torch._foreach_add_(denoms, eps)
        torch._foreach_addcdiv_(params, nesterov_mus, denoms, [-lr / (1.0 - b1**t) for t in steps])


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    """``{'optimizer', 'scheduler'}``: both have state_dict(), so both are checkpointed."""
    del model_state, rng, hyperparameters
    hp = HPARAMS
    optimizer = NAdamW(
        model_params.parameters(),
        lr=hp.learning_rate,
        betas=(1.0 - hp.one_minus_beta1, hp.beta2),
        eps=1e-8,
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
    """One NAdamW step; reads loss and grad norm back only on logging steps."""
    del current_params_types, loss_type, eval_results, train_state, hyperparameters
    hp = HPARAMS
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
        dropout_rate=hp.dropout_rate,
    )
    losses = workload.loss_fn(
        label_batch=batch["targets"],
        logits_batch=logits,
        mask_batch=batch.get("weights"),
        label_smoothing=getattr(hp, "label_smoothing", 0.0),
    )
    summed, n_valid = losses["summed"], losses["n_valid_examples"]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Differentiable all-reduce: the loss and its gradients are those of the global batch.
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    loss = summed / n_valid
    loss.backward()

    grad_clip = getattr(hp, "grad_clip", None)
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
