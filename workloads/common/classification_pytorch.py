"""PyTorch half of the in-memory image-classification workloads: building the model (seeded,
on the device, wrapped in DDP when distributed), the softmax loss and the evaluation step, on
top of the framework-free ``ImageClassificationWorkload``.

A workload supplies its ``torch.nn.Module`` (``_build_model``, from its ``models.py``).
Batches are the numpy pipeline's arrays as tensors on the workload's device, inputs in NCHW
layout. Under DDP every rank builds the same numpy batches and keeps its own slice of rows,
and eval sums are all-reduced.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from algoperf import param_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload


class PyTorchImageClassificationWorkload(ImageClassificationWorkload):
    """The PyTorch implementation of everything framework-specific in a classification
    workload."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_ddp, self._rank, self._device, _ = pytorch_setup()

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        if self._use_ddp:
            per_rank = len(batch["targets"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        inputs = batch["inputs"]
        if inputs.ndim == 4:
            inputs = np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        return {
            "inputs": torch.from_numpy(inputs).to(self._device),
            "targets": torch.from_numpy(batch["targets"].astype(np.int64)).to(self._device),
            "weights": torch.from_numpy(batch["weights"]).to(self._device),
        }

    @abc.abstractmethod
    def _build_model(self) -> nn.Module:
        """The workload's module, configured by its (variant) settings, on the CPU."""

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        torch.random.manual_seed(pipeline.seed_from_rng(rng))
        model = self._build_model()
        self._param_shapes = param_utils.pytorch_param_shapes(model)
        self._param_types = param_utils.pytorch_param_types(self._param_shapes)
        model.to(self._device)
        if self._use_ddp:
            device_ids = [self._rank] if self._device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return model, None

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float | None = None,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits of the batch from the module ``params``: EVAL runs ``model.eval()`` under
        ``torch.no_grad()``, TRAIN runs ``model.train()``. A stateless model has no dropout or
        batch norm, so ``rng``, ``update_batch_norm`` and ``dropout_rate`` change nothing."""
        del model_state, rng, update_batch_norm, dropout_rate
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(augmented_and_preprocessed_input_batch["inputs"])
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Masked softmax cross-entropy of integer (or one-hot) labels, with label smoothing."""
        per_example = F.cross_entropy(logits_batch, label_batch, reduction="none",
                                      label_smoothing=label_smoothing)
        if mask_batch is None:
            n_valid = torch.tensor(float(per_example.shape[0]), device=per_example.device)
        else:
            per_example = per_example * mask_batch
            n_valid = mask_batch.sum()
        return {"summed": per_example.sum(), "n_valid_examples": n_valid,
                "per_example": per_example}

    def _eval_batch_metrics(
        self, params: spec.ParameterContainer, batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
    ) -> dict[str, spec.Tensor]:
        logits, _ = self.model_fn(params, batch, model_state, spec.ForwardPassMode.EVAL,
                                  None, update_batch_norm=False)
        weights = batch["weights"]
        correct = ((logits.argmax(dim=-1) == batch["targets"]) * weights).sum()
        summed_loss = self.loss_fn(batch["targets"], logits, weights)["summed"]
        return {"accuracy": correct, "loss": summed_loss}

    def _sum_across_processes(self, totals: dict[str, Any]) -> dict[str, Any]:
        if self._use_ddp:
            for total in totals.values():
                dist.all_reduce(total)
        return totals
