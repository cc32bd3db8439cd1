"""The criteo1tb workload in PyTorch: DLRM-small or its residual variant (``models``), the
masked sigmoid cross-entropy and the eval step. Stateless: the model state is None. Under DDP
every rank builds the same numpy batches and keeps its own rows; eval sums are all-reduced.

Fixed AlgoPerf quirk: its ``is_output_params`` names ``top_mlp.4``, a hidden layer of
DLRM-small; here it names the last ``Linear``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from algoperf import param_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads.common import pipeline
from algoperf.workloads.criteo1tb.criteo1tb_pytorch.models import DLRMResNet, DlrmSmall
from algoperf.workloads.criteo1tb.workload import DROPOUT_RATE, BaseCriteo1TbDlrmSmallWorkload


def per_example_sigmoid_cross_entropy(logits: torch.Tensor,
                                      targets: torch.Tensor) -> torch.Tensor:
    """``-(t log sigmoid(z) + (1 - t) log sigmoid(-z))``, AlgoPerf's formula."""
    log_sigmoid = torch.nn.functional.logsigmoid
    return -(targets * log_sigmoid(logits) + (1 - targets) * log_sigmoid(-logits))


class Criteo1TbDlrmSmallWorkload(BaseCriteo1TbDlrmSmallWorkload):
    """Criteo 1TB with a PyTorch DLRM."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_ddp, self._rank, self._device, _ = pytorch_setup()

    @property
    def eval_batch_size(self) -> int:
        return 8_192

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        if self._use_ddp:
            per_rank = len(batch["weights"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        return {key: torch.from_numpy(value).to(self._device) for key, value in batch.items()}

    def _build_model(self) -> nn.Module:
        if self.use_resnet:
            return DLRMResNet(self.vocab_size, mlp_bottom_dims=self.mlp_bottom_dims,
                              mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim)
        return DlrmSmall(self.vocab_size, mlp_bottom_dims=self.mlp_bottom_dims,
                         mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim,
                         use_layer_norm=self.use_layer_norm,
                         embedding_init_multiplier=self.embedding_init_multiplier)

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
        return param_key in self._output_names()

    def _output_names(self) -> tuple[str, str]:
        """The last ``Linear``'s weight and bias names."""
        if self.use_resnet:
            prefix = f"top_mlp.{len(self.mlp_top_dims) - 1}.module.0"
        else:
            per_layer = 3 if self.use_layer_norm else 2  # Linear, ReLU[, LayerNorm]
            prefix = f"top_mlp.{per_layer * (len(self.mlp_top_dims) - 1) + 1}"
        return f"{prefix}.weight", f"{prefix}.bias"

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float = DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits (N, 1). EVAL: ``model.eval()`` under ``torch.no_grad()``; TRAIN: dropout at
        ``dropout_rate``. No batch norm."""
        del model_state, rng, update_batch_norm
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            logits = model(augmented_and_preprocessed_input_batch["inputs"],
                           dropout_rate=dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Per-example sigmoid cross-entropy of the flattened logits and labels, masked;
        ``label_smoothing`` is ignored, as AlgoPerf's."""
        del label_smoothing
        per_example = per_example_sigmoid_cross_entropy(logits_batch.reshape(-1),
                                                        label_batch.reshape(-1))
        if mask_batch is None:
            n_valid = torch.tensor(float(len(per_example)), device=per_example.device)
        else:
            mask = mask_batch.reshape(-1)
            per_example = per_example * mask
            n_valid = mask.sum()
        return {"summed": per_example.sum(), "n_valid_examples": n_valid,
                "per_example": per_example}

    def _eval_batch_loss(self, params: spec.ParameterContainer,
                         batch: dict[str, spec.Tensor]) -> torch.Tensor:
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        return self.loss_fn(batch["targets"], logits, batch["weights"])["summed"].to(
            torch.float64)

    def _sum_across_processes(self, total: Any) -> Any:
        if self._use_ddp:
            dist.all_reduce(total)
        return total
