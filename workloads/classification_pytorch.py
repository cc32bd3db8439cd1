"""PyTorch half of the in-memory image-classification workloads: an MLP, the softmax loss and
the evaluation step, on top of the framework-free ``ImageClassificationWorkload``.

The MLP's linear layers start like flax's ``nn.Dense`` (LeCun-normal weights truncated at two
standard deviations, zero biases), so both frameworks begin statistically alike; parameter
names follow AlgoPerf's MNIST model (``net.layer1.weight``, ...). Batches are the numpy
pipeline's arrays as tensors on the workload's device, inputs in NCHW layout. Under DDP every
rank builds the same numpy batches and keeps its own slice of rows, and eval sums are
all-reduced.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from algoperf import param_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads import pipeline
from algoperf.workloads.classification import ImageClassificationWorkload

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
# Standard deviation of a standard normal truncated to [-2, 2]; flax rescales by it.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def lecun_normal_(linear: nn.Linear) -> None:
    """Re-initialises ``linear`` in place as flax's default Dense: LeCun normal, zero bias."""
    std = math.sqrt(1.0 / linear.in_features) / _TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class MLP(nn.Module):
    """Flattens the images, then hidden linear layers with ``activation``, then class logits."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], activation: str,
                 num_classes: int) -> None:
        super().__init__()
        widths = [in_features, *hidden_sizes, num_classes]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False), 1):
            layers[f"layer{index}"] = nn.Linear(fan_in, fan_out)
            if index < len(widths) - 1:
                layers[f"layer{index}_{activation}"] = _ACTIVATIONS[activation]()
        self.net = nn.Sequential(layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.net:
            if isinstance(module, nn.Linear):
                lecun_normal_(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


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
        inputs = np.ascontiguousarray(batch["inputs"].transpose(0, 3, 1, 2))  # NHWC -> NCHW
        return {
            "inputs": torch.from_numpy(inputs).to(self._device),
            "targets": torch.from_numpy(batch["targets"].astype(np.int64)).to(self._device),
            "weights": torch.from_numpy(batch["weights"]).to(self._device),
        }

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        torch.random.manual_seed(pipeline.seed_from_rng(rng))
        model = MLP(math.prod(self.input_shape), self.hidden_sizes, self.activation,
                    self.num_classes)
        self._param_shapes = param_utils.pytorch_param_shapes(model)
        self._param_types = param_utils.pytorch_param_types(self._param_shapes)
        model.to(self._device)
        if self._use_ddp:
            device_ids = [self._rank] if self._device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return model, None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        output_layer = f"net.layer{len(self.hidden_sizes) + 1}"
        return param_key in (f"{output_layer}.weight", f"{output_layer}.bias")

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
        ``torch.no_grad()``, TRAIN runs ``model.train()``. The MLP has no dropout, batch norm
        or state, so ``rng``, ``update_batch_norm`` and ``dropout_rate`` change nothing."""
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
