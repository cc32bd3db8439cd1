"""The LibriSpeech Conformer workload in PyTorch: ``ConformerEncoderDecoder`` (``models``),
CTC loss by ``torch.nn.functional.ctc_loss`` and the eval step. The model's batch-norm
statistics are its buffers; the model state is None.

``model_fn`` returns AlgoPerf's ``((logits, logit_paddings), None)``; ``loss_fn`` takes
``(targets, target_paddings)`` and that pair. Under DDP every rank builds the same numpy batch
and keeps its own rows; eval sums and decoded ids are gathered across ranks.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from algoperf import param_utils, random_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads.common import pipeline
from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch import models
from algoperf.workloads.librispeech_conformer.workload import BaseLibriSpeechConformerWorkload


def ctc_loss(label_batch: tuple[torch.Tensor, torch.Tensor],
             logits_batch: tuple[torch.Tensor, torch.Tensor],
             mask_batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """AlgoPerf's CTC ``loss_fn`` (the JAX workload's ``ctc_loss``): ``F.ctc_loss`` (blank 0)
    of the log-softmax per utterance, times the mask; ``n_valid_examples`` the target tokens
    of the unmasked utterances (at least 1)."""
    logits, logit_paddings = logits_batch
    targets, target_paddings = label_batch
    log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)
    input_lengths = (1 - logit_paddings).sum(dim=-1).long()
    target_lengths = (1 - target_paddings).sum(dim=-1).long()
    per_example = F.ctc_loss(log_probs, targets.long(), input_lengths, target_lengths,
                             blank=0, reduction="none")
    tokens = 1 - target_paddings
    if mask_batch is not None:
        per_example = per_example * mask_batch
        tokens = tokens * (mask_batch[:, None] > 0)
    n_valid = torch.clamp(tokens.sum(), min=1).to(per_example.dtype)
    return {"summed": per_example.sum(), "n_valid_examples": n_valid,
            "per_example": per_example}


class LibriSpeechConformerWorkload(BaseLibriSpeechConformerWorkload):
    """LibriSpeech with the PyTorch Conformer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_ddp, self._rank, self._device, _ = pytorch_setup()

    def _config(self) -> models.ConformerConfig:
        return models.ConformerConfig(attention_temperature=self.attention_temperature,
                                      use_post_layer_norm=self.use_post_layer_norm,
                                      activation="gelu" if self.use_gelu else "swish")

    def _build_model(self) -> nn.Module:
        return models.ConformerEncoderDecoder(self._config())

    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        def tensors(arrays):
            if self._use_ddp:
                per_rank = len(arrays) // dist.get_world_size()
                arrays = arrays[self._rank * per_rank:(self._rank + 1) * per_rank]
            return torch.from_numpy(np.ascontiguousarray(arrays)).to(self._device)

        return {"inputs": tuple(tensors(x) for x in batch["inputs"]),
                "targets": tuple(tensors(x) for x in batch["targets"]),
                "weights": tensors(batch["weights"])}

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

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("lin.weight", "lin.bias")

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        use_running_average_bn: bool | None = None,
        dropout_rate: float = models.DROPOUT_RATE,
    ) -> tuple[tuple[spec.Tensor, spec.Tensor], spec.ModelAuxiliaryState]:
        """``(logits, logit_paddings)``. EVAL: ``model.eval()`` under ``torch.no_grad()``;
        TRAIN: SpecAugment (the JAX model's draws from ``rng``) and dropout at
        ``dropout_rate``; batch norm as the JAX workload's."""
        del model_state
        model = params
        audio, paddings = augmented_and_preprocessed_input_batch["inputs"]
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        specaug_key = None
        if not evaluating and rng is not None:
            specaug_key = random_utils.split(np.asarray(rng).astype(np.uint32), 2)[1]
        if use_running_average_bn is None:
            use_running_average_bn = not update_batch_norm
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            outputs = model(audio, paddings, update_batch_norm=update_batch_norm,
                            use_running_average_bn=use_running_average_bn,
                            dropout_rate=dropout_rate, specaug_key=specaug_key)
        return outputs, None

    def loss_fn(
        self,
        label_batch: tuple[spec.Tensor, spec.Tensor],
        logits_batch: tuple[spec.Tensor, spec.Tensor],
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """CTC per utterance (``ctc_loss``); label smoothing is ignored, as AlgoPerf's."""
        del label_smoothing
        return ctc_loss(label_batch, logits_batch, mask_batch)

    def _eval_outputs(self, params, batch, model_state):
        (logits, paddings), _ = self.model_fn(params, batch, model_state,
                                              spec.ForwardPassMode.EVAL, None, False)
        loss = ctc_loss(batch["targets"], (logits, paddings), batch["weights"])
        real = batch["weights"] > 0
        tokens = (1 - batch["targets"][1])[real].sum()
        outputs = [loss["summed"].reshape(1), tokens.reshape(1).to(logits.dtype),
                   logits.argmax(dim=-1), paddings, *batch["targets"], batch["weights"]]
        if self._use_ddp:
            gathered = []
            for tensor in outputs:
                parts = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
                dist.all_gather(parts, tensor.contiguous())
                gathered.append(torch.cat(parts))
            outputs = gathered
        summed, tokens, *arrays = (t.detach().cpu().numpy() for t in outputs)
        names = ("frame_ids", "logit_paddings", "targets", "target_paddings", "weights")
        return float(summed.sum()), float(tokens.sum()), dict(zip(names, arrays, strict=True))
