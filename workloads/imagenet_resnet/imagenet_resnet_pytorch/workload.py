"""The ImageNet ResNet-50 workload in PyTorch: the torch model (``models``) with batch norm,
on the common classification base. Batch-norm statistics live in the module's buffers (the
model state is None), frozen in TRAIN mode unless ``update_batch_norm``, as in AlgoPerf."""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from algoperf import pytorch_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.imagenet_resnet.imagenet_resnet_pytorch.models import ResNet50
from algoperf.workloads.imagenet_resnet.workload import BaseImagenetResNetWorkload


class ImagenetPyTorchMixin(PyTorchImageClassificationWorkload):
    """What the PyTorch ImageNet workloads share: batches with soft (mixup) targets."""

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        """NHWC float32 inputs to NCHW, integer targets to int64 (soft ones stay float32),
        weights where the batch has them; this rank's rows under DDP."""
        if self._use_ddp:
            per_rank = len(batch["inputs"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        tensors = {"inputs": np.ascontiguousarray(batch["inputs"].transpose(0, 3, 1, 2),
                                                  np.float32)}
        targets = np.asarray(batch["targets"])
        tensors["targets"] = targets.astype(
            np.int64 if np.issubdtype(targets.dtype, np.integer) else np.float32)
        if "weights" in batch:
            tensors["weights"] = np.asarray(batch["weights"], np.float32)
        return {key: torch.from_numpy(value).to(self._device) for key, value in tensors.items()}


class ImagenetResNetWorkload(BaseImagenetResNetWorkload, ImagenetPyTorchMixin):
    """ImageNet with a PyTorch ResNet-50; the variants are its settings."""

    def _build_model(self) -> nn.Module:
        # In place where AlgoPerf's are (ReLU, SiLU); GELU's tanh approximation, as
        # AlgoPerf's (and flax's default) GELU.
        act = (functools.partial(F.silu, inplace=True) if self.use_silu
               else functools.partial(F.gelu, approximate="tanh") if self.use_gelu
               else torch.relu_)
        return ResNet50(self.num_classes, act=act, bn_init_scale=self.bn_init_scale)

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
