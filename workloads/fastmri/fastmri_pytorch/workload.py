"""The fastmri workload in PyTorch: the U-Net (``models``), the per-example L1 loss and the
eval step with AlgoPerf's SSIM (``ssim``). Stateless: the model state is None. Under DDP
every rank builds the same numpy batches and keeps its own rows; eval sums are all-reduced."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from algoperf import param_utils, spec
from algoperf.pytorch_utils import pytorch_setup
from algoperf.workloads.common import pipeline
from algoperf.workloads.fastmri.fastmri_pytorch.models import UNet
from algoperf.workloads.fastmri.fastmri_pytorch.ssim import ssim
from algoperf.workloads.fastmri.workload import DROPOUT_RATE, BaseFastMRIWorkload


class FastMRIWorkload(BaseFastMRIWorkload):
    """fastMRI with a PyTorch U-Net."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._use_ddp, self._rank, self._device, _ = pytorch_setup()

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        if self._use_ddp:
            per_rank = len(batch["weights"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        return {key: torch.from_numpy(value).to(self._device) for key, value in batch.items()}

    def _build_model(self) -> nn.Module:
        return UNet(num_channels=self.num_channels, num_pool_layers=self.num_pool_layers,
                    use_tanh=self.use_tanh, use_layer_norm=self.use_layer_norm)

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
        last = self.num_pool_layers - 1
        return param_key in (f"up_conv.{last}.1.weight", f"up_conv.{last}.1.bias")

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
        """Reconstructions (N, H, W). EVAL: ``model.eval()`` under ``torch.no_grad()``;
        TRAIN: channel dropout at ``dropout_rate``. No batch norm."""
        del model_state, rng, update_batch_norm
        model = params
        evaluating = mode == spec.ForwardPassMode.EVAL
        model.train(not evaluating)
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            outputs = model(augmented_and_preprocessed_input_batch["inputs"],
                            dropout_rate=dropout_rate)
        return outputs, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Per-example mean absolute error over the pixels, masked; ``label_smoothing`` is
        ignored (a regression)."""
        del label_smoothing
        per_example = (logits_batch - label_batch).abs().mean(
            dim=tuple(range(1, logits_batch.ndim)))
        if mask_batch is None:
            n_valid = torch.tensor(float(per_example.shape[0]), device=per_example.device)
        else:
            per_example = per_example * mask_batch
            n_valid = mask_batch.sum()
        return {"summed": per_example.sum(), "n_valid_examples": n_valid,
                "per_example": per_example}

    def _eval_batch_metrics(self, params: spec.ParameterContainer,
                            batch: dict[str, spec.Tensor]) -> dict[str, spec.Tensor]:
        outputs, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        weights = batch["weights"]
        values = ssim(outputs, batch["targets"], batch["mean"], batch["std"],
                      batch["volume_max"])
        return {"ssim": (values * weights).sum(),
                "loss": self.loss_fn(batch["targets"], outputs, weights)["summed"]}

    def _sum_across_processes(self, totals: dict[str, Any]) -> dict[str, Any]:
        if self._use_ddp:
            for total in totals.values():
                dist.all_reduce(total)
        return totals
