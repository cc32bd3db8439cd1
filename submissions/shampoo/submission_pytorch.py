"""Shampoo with grafting, linear warmup and cosine decay in PyTorch: AlgoPerf's paper
baseline.

`Shampoo` below computes the JAX version's rule (Distributed Shampoo with the defaults of
AlgoPerf's baseline, blocking and merged dimensions included, on one device: see
submission_jax.py for what it leaves out). The learning rate rises linearly from 0
over ``warmup_factor * step_hint`` steps, then follows a cosine to 0 at ``step_hint``.
``beta1 = 1 - one_minus_beta1``. Optional hyperparameters: ``grad_clip`` (global-norm
clipping) and ``label_smoothing``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
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


BLOCK_SIZE = 1024  # Distributed Shampoo's block_size: the largest preconditioner dimension
MERGE_DIMS_SIZE = 4096  # its merge_small_dims_block_size
SKIP_DIM_SIZE = 4096  # tensors with a larger dimension are not preconditioned
START_PRECONDITIONING_STEP = 101  # its defaults, as in AlgoPerf's baseline
PRECONDITIONING_COMPUTE_STEPS = 20
MATRIX_EPS = 1e-6  # relative to the largest eigenvalue of the statistic
DIAGONAL_EPS = 1e-8
_NORM_EPS = 1e-16


def merged_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Distributed Shampoo's best-effort shape interpretation (submission_jax.py's)."""
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


def preconditioned(shape: Sequence[int]) -> bool:
    """Tensors of rank >= 1 with no dimension over SKIP_DIM_SIZE are preconditioned."""
    return len(shape) >= 1 and all(n <= SKIP_DIM_SIZE for n in shape)


def block_sizes(shape: Sequence[int]) -> list[list[int]]:
    """Per merged dimension, its blocks' sizes: BLOCK_SIZE each, the last the remainder."""
    sizes = []
    for n in merged_shape(shape):
        full, rest = divmod(n, BLOCK_SIZE)
        sizes.append([BLOCK_SIZE] * full + ([rest] if rest else []))
    return sizes


def partition(x: torch.Tensor, sizes: list[list[int]]) -> list[torch.Tensor]:
    """``x`` (of the merged shape) cut into its blocks, row-major over the block grid."""
    blocks = [x]
    for axis, dim_sizes in enumerate(sizes):
        if len(dim_sizes) > 1:
            blocks = [part for b in blocks for part in torch.split(b, dim_sizes, dim=axis)]
    return blocks


def merge_partitions(blocks: list[torch.Tensor], sizes: list[list[int]]) -> torch.Tensor:
    """The inverse of `partition`."""
    for axis in reversed(range(len(sizes))):
        n = len(sizes[axis])
        if n > 1:
            blocks = [torch.cat(blocks[i:i + n], dim=axis) for i in range(0, len(blocks), n)]
    return blocks[0]


def inverse_root(statistic: torch.Tensor, root: int) -> torch.Tensor:
    """``(statistic + eps * max_eigenvalue * I) ** (-1 / root)`` by eigendecomposition."""
    eigenvalues, vectors = torch.linalg.eigh(statistic)
    reg = MATRIX_EPS * torch.clamp(eigenvalues.max(), min=1e-30)
    scaled = (torch.clamp(eigenvalues, min=0.0) + reg) ** (-1.0 / root)
    return (vectors * scaled) @ vectors.T


class Shampoo(torch.optim.Optimizer):
    """The JAX version's Distributed Shampoo rule (its `shampoo` docstring), per tensor.

    Each tensor is reshaped by `merged_shape` and cut into blocks of at most 1024 per
    dimension; per block and dimension a statistic ``G G^T`` (from ``eps * I``, averaged with
    ``beta2``) and its inverse ``2k``-th root, recomputed every 20 steps; the reassembled
    direction scaled to the norm of an RMSprop step on the normalised gradient; weight decay
    added; a Nesterov momentum (moving average ``beta1``) for each of the Shampoo and grafted
    steps, the grafted one taken before step 101; then the learning rate. AlgoPerf's PyTorch
    Shampoo folder is empty and Meta's Distributed Shampoo is not on PyPI, so it is written
    here; tests/test_baselines.py holds it to the JAX version.
    """

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "beta1": beta1, "beta2": beta2,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["beta1"], group["beta2"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                shampoo = preconditioned(p.shape)
                sizes = block_sizes(p.shape) if shampoo else []
                if not state:
                    state["step"] = torch.tensor(0.0)
                    for name in ("graft", "graft_momentum", "momentum"):
                        state[name] = torch.zeros_like(p)
                    if shampoo:
                        sides = [n for block in itertools.product(*sizes) for n in block]
                        state["stats"] = [MATRIX_EPS * torch.eye(n, dtype=p.dtype,
                                                                 device=p.device)
                                          for n in sides]
                        state["preconditioners"] = [torch.eye(n, dtype=p.dtype,
                                                              device=p.device)
                                                    for n in sides]
                count = int(state["step"].item())  # Distributed Shampoo's: 0 at the first
                state["step"] += 1
                normalised = g / (torch.linalg.norm(g) + _NORM_EPS)
                v = state["graft"].mul_(beta2).addcmul_(normalised, normalised,
                                                        value=1 - beta2)
                graft = normalised / (v.sqrt() + DIAGONAL_EPS)
                direction = graft
                if shampoo:
                    rank = len(sizes)
                    blocks = partition(g.reshape(merged_shape(g.shape)), sizes)
                    for i, block in enumerate(blocks):
                        for d in range(rank):
                            axes = [a for a in range(rank) if a != d]
                            state["stats"][i * rank + d].mul_(beta2).add_(
                                torch.tensordot(block, block, dims=(axes, axes)),
                                alpha=1 - beta2)
                    if count % PRECONDITIONING_COMPUTE_STEPS == 0 and (
                            count + PRECONDITIONING_COMPUTE_STEPS > START_PRECONDITIONING_STEP):
                        for k, s in enumerate(state["stats"]):
                            root = inverse_root(s, 2 * rank)
                            if torch.isfinite(root).all():  # a failed root keeps the old one
                                state["preconditioners"][k] = root
                    qs = state["preconditioners"]
                    preconditioned_blocks = []
                    for i, block in enumerate(blocks):
                        for q in qs[i * rank:(i + 1) * rank]:
                            block = torch.tensordot(block, q, dims=([0], [0]))
                        preconditioned_blocks.append(block)
                    direction = merge_partitions(preconditioned_blocks, sizes).reshape(g.shape)
                shampoo_step = direction * (torch.linalg.norm(graft)
                                            / (torch.linalg.norm(direction) + _NORM_EPS))
                shampoo_step = shampoo_step + group["weight_decay"] * p
                graft_step = graft + group["weight_decay"] * p
                m = state["momentum"].mul_(beta1).add_(shampoo_step, alpha=1 - beta1)
                graft_m = state["graft_momentum"].mul_(beta1).add_(graft_step, alpha=1 - beta1)
                if count >= START_PRECONDITIONING_STEP:
                    step, momentum = shampoo_step, m
                else:
                    step, momentum = graft_step, graft_m
                p.sub_(group["lr"] * ((1 - beta1) * step + beta1 * momentum))


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
    optimizer = Shampoo(
        model_params.parameters(),
        lr=hp.learning_rate,
        beta1=1.0 - hp.one_minus_beta1,
        beta2=hp.beta2,
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
    """One Shampoo step; reads loss and grad norm back only on logging steps."""
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
