"""The CIFAR workload in PyTorch: ResNet-18 (``models``) with batch norm, on the common
classification base."""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from algoperf import pytorch_utils, spec
from algoperf.workloads.cifar.cifar_pytorch.models import ResNet18
from algoperf.workloads.cifar.workload import BaseCifarWorkload
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload


class CifarWorkload(BaseCifarWorkload, PyTorchImageClassificationWorkload):
    """CIFAR-10 with a PyTorch ResNet-18; input handling, loss and eval come from the bases."""

    def _build_model(self) -> nn.Module:
        return ResNet18(self.num_classes)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("fc.weight", "fc.bias")

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
        """Logits of the batch. EVAL: ``model.eval()`` under ``torch.no_grad()``. TRAIN:
        ``model.train()``, with batch-norm running statistics frozen unless
        ``update_batch_norm`` (AlgoPerf's momentum-zero convention). No dropout."""
        del model_state, rng, dropout_rate
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        if evaluating and update_batch_norm:
            raise ValueError("batch norm statistics cannot be updated in EVAL mode")
        model.train(not evaluating)
        if not evaluating:
            model.apply(functools.partial(pytorch_utils.update_batch_norm_fn,
                                          update_batch_norm=update_batch_norm))
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(augmented_and_preprocessed_input_batch["inputs"])
        return logits, None

