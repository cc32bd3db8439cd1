"""The wmt workload in PyTorch: the Transformer of ``models``, one logits row per target
position (B * T, 32000), and beam search (``wmt.decode``) over the model's key/value cache."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from algoperf import spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.wmt import decode
from algoperf.workloads.wmt import workload as constants
from algoperf.workloads.wmt.wmt_pytorch.models import Transformer, reorder_cache
from algoperf.workloads.wmt.workload import BaseWmtWorkload

# Batch keys of packed rows (AlgoPerf's) -> the model's argument names.
PACKING_KEYS = {"inputs_position": "inputs_positions", "targets_position": "targets_positions",
                "inputs_segmentation": "inputs_segmentation",
                "targets_segmentation": "targets_segmentation"}


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class WmtWorkload(BaseWmtWorkload, PyTorchImageClassificationWorkload):
    """wmt with a PyTorch model: token rows, per-position logits, beam-searched BLEU."""

    def _build_model(self) -> nn.Module:
        return Transformer(pre_ln=self.pre_ln, attention_temp=self.attention_temp,
                           glu=self.glu, activation=self.activation)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "shared_embedding.weight"  # also the output layer

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        batch = self.per_position(batch)
        length = batch["inputs"].shape[1]
        if self._use_ddp:  # each rank keeps its own rows, as the base keeps its examples
            per_rank = len(batch["inputs"]) // dist.get_world_size()
            first = self._rank * per_rank
            batch = {key: value[first * (length if value.ndim == 1 else 1):
                                (first + per_rank) * (length if value.ndim == 1 else 1)]
                     for key, value in batch.items()}
        return {key: torch.from_numpy(value if key == "weights" else value.astype(np.int64))
                .to(self._device) for key, value in batch.items()}

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float | None = constants.DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits of every target position, (B * T, 32000): EVAL under ``model.eval()`` and
        ``torch.no_grad()``, TRAIN with dropout (default 0.1, AlgoPerf's). No state."""
        del model_state, rng, update_batch_norm
        batch = augmented_and_preprocessed_input_batch
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        inputs = batch["inputs"]
        packing = {argument: batch[key] for key, argument in PACKING_KEYS.items()
                   if key in batch}
        rate = constants.DROPOUT_RATE if dropout_rate is None else dropout_rate
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(inputs, batch["targets"].view(inputs.shape[0], -1), **packing,
                           dropout_rate=rate)
        return logits.flatten(0, -2), None

    def _eval_batch_metrics(self, params, batch, model_state):
        """Sums over the batch's real target tokens (weights x ``targets > 0``)."""
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        targets = batch["targets"]
        weights = batch["weights"] * (targets > 0)
        correct = ((logits.argmax(dim=-1) == targets) * weights).sum()
        summed = self.loss_fn(targets, logits, weights)["summed"]
        return {"accuracy": correct, "loss": summed, "denominator": weights.sum()}

    def _sum_across_processes(self, totals: dict[str, Any]) -> dict[str, Any]:
        if not self._use_ddp:
            return totals
        summed = {}
        for name, total in totals.items():
            tensor = torch.as_tensor(np.asarray(total.cpu() if torch.is_tensor(total) else total),
                                     device=self._device)
            dist.all_reduce(tensor)
            summed[name] = tensor.cpu().numpy()
        return summed

    @staticmethod
    def _to_numpy(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)

    @torch.no_grad()
    def _translate(self, params: spec.ParameterContainer,
                   batch: dict[str, spec.Tensor]) -> np.ndarray:
        model = _unwrap(params)
        model.eval()
        inputs = batch["inputs"]
        beam = decode.BEAM_SIZE
        memory = model.encode(inputs, dropout_rate=0.0).repeat_interleave(beam, dim=0)
        flat_inputs = inputs.repeat_interleave(beam, dim=0)
        state = {"cache": model.init_cache(len(flat_inputs), self.max_predict_length, memory)}

        def step(ids, live_logprobs, rows):
            device = inputs.device
            state["cache"] = reorder_cache(state["cache"], torch.from_numpy(rows).to(device))
            logits = model.decode_step(torch.from_numpy(ids).to(device), memory, flat_inputs,
                                       state["cache"])
            live = torch.from_numpy(live_logprobs).to(device)
            logprobs = F.log_softmax(logits, dim=-1).view(*live.shape, -1) + live[:, :, None]
            vocab = logprobs.shape[-1]
            values, flat = logprobs.view(live.shape[0], -1).topk(2 * beam, dim=1)
            return (values.cpu().numpy(), (flat // vocab).cpu().numpy(),
                    (flat % vocab).cpu().numpy())

        return decode.best_translations(step, inputs.shape[0],
                                        max_decode_length=self.max_predict_length)
