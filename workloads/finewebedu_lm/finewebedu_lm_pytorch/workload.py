"""The finewebedu_lm workload in PyTorch: the Transformer of ``models``, token windows
(B, T), one logits row per position (B * T, 50257)."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from algoperf import spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.finewebedu_lm.finewebedu_lm_pytorch.models import Transformer
from algoperf.workloads.finewebedu_lm.workload import BaseLmWorkload


class LmWorkload(BaseLmWorkload, PyTorchImageClassificationWorkload):
    """finewebedu_lm with a PyTorch model: integer windows, per-position rows over the bases."""

    def _build_model(self) -> nn.Module:
        return Transformer()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "embed_tokens.weight"  # the tied embedding is the output layer

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        if self._use_ddp:  # each rank keeps its own windows, as the base keeps its rows
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
        """Next-token logits, one row per position: (B * T, 50257); no dropout, no state."""
        logits, state = super().model_fn(params, augmented_and_preprocessed_input_batch,
                                         model_state, mode, rng, update_batch_norm, dropout_rate)
        return logits.flatten(0, -2), state
