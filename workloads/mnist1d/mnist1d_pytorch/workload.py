"""The mnist1d workload in PyTorch: CNN ``convs.0 -> convs.1 -> convs.2 -> fc``, inputs
(B, 40, 1) as in JAX (the model puts channels first itself)."""

import torch
import torch.distributed as dist
from torch import nn

from algoperf import spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.mnist1d.mnist1d_pytorch.models import Mnist1dCNN
from algoperf.workloads.mnist1d.workload import BaseMnist1dWorkload


class Mnist1dWorkload(BaseMnist1dWorkload, PyTorchImageClassificationWorkload):
    """MNIST-1D with a PyTorch model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return Mnist1dCNN()

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        # The base's conversion is for NHWC images; signals keep their (B, W, C) layout.
        if self._use_ddp:
            per_rank = len(batch["targets"]) // dist.get_world_size()
            rows = slice(self._rank * per_rank, (self._rank + 1) * per_rank)
            batch = {key: value[rows] for key, value in batch.items()}
        return {
            "inputs": torch.from_numpy(batch["inputs"]).to(self._device),
            "targets": torch.from_numpy(batch["targets"].astype("int64")).to(self._device),
            "weights": torch.from_numpy(batch["weights"]).to(self._device),
        }

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("fc.weight", "fc.bias")
