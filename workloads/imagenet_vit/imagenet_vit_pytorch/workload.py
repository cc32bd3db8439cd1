"""The ImageNet ViT workload in PyTorch: the torch ViT-S/16 (``models``), with ResNet's
ImageNet data, loss and evaluation (``imagenet_resnet``'s PyTorch workload). No model state;
``dropout_rate`` (default 0.0) applies in TRAIN mode."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from algoperf import spec
from algoperf.workloads.imagenet_resnet.imagenet_resnet_pytorch.workload import (
    ImagenetResNetWorkload,
)
from algoperf.workloads.imagenet_vit.imagenet_vit_pytorch.models import ViT
from algoperf.workloads.imagenet_vit.workload import (
    DROPOUT_RATE,
    VIT_S16,
    BaseImagenetVitWorkload,
)


class ImagenetVitWorkload(BaseImagenetVitWorkload, ImagenetResNetWorkload):
    """ImageNet with a PyTorch ViT-S/16; the variants are its settings."""

    def _build_model(self) -> nn.Module:
        return ViT(self.num_classes, use_glu=self.use_glu,
                   use_post_layer_norm=self.use_post_layer_norm, use_map=self.use_map,
                   **VIT_S16)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("head.weight", "head.bias")

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float | None = DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits of the batch. EVAL: ``model.eval()`` under ``torch.no_grad()``; TRAIN:
        ``model.train()``, dropout at ``dropout_rate``. No batch norm: ``update_batch_norm``
        changes nothing."""
        del model_state, rng, update_batch_norm
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        rate = DROPOUT_RATE if dropout_rate is None else dropout_rate
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(augmented_and_preprocessed_input_batch["inputs"], dropout_rate=rate)
        return logits, None
