"""The charlm workload in PyTorch: the Transformer of ``models``, byte inputs (B, 32), one
logits row per position."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from algoperf import spec
from algoperf.workloads.charlm.charlm_pytorch.models import CharTransformer
from algoperf.workloads.charlm.workload import BaseCharLmWorkload
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload


class CharLmWorkload(BaseCharLmWorkload, PyTorchImageClassificationWorkload):
    """charlm with a PyTorch model: integer inputs and per-position rows over the bases."""

    def _build_model(self) -> nn.Module:
        return CharTransformer()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("head.weight", "head.bias")

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        if self._use_ddp:  # each rank keeps its own sequences, as the base keeps its rows
            per_rank = len(batch["inputs"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        batch = self.per_position(batch)
        return {
            "inputs": torch.from_numpy(batch["inputs"].astype(np.int64)).to(self._device),
            "targets": torch.from_numpy(batch["targets"].astype(np.int64)).to(self._device),
            "weights": torch.from_numpy(batch["weights"]).to(self._device),
        }

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
        """Next-byte logits, one row per position: (B * T, 256)."""
        logits, state = super().model_fn(params, augmented_and_preprocessed_input_batch,
                                         model_state, mode, rng, update_batch_norm, dropout_rate)
        return logits.flatten(0, -2), state
