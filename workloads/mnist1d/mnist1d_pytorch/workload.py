"""The mnist1d workload in PyTorch: CNN ``convs.0 -> convs.1 -> convs.2 -> fc``, inputs
(B, 40, 1) as in JAX (the base keeps 3-D inputs as they are; the model puts channels
first itself)."""

from torch import nn

from algoperf import spec
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.mnist1d.mnist1d_pytorch.models import Mnist1dCNN
from algoperf.workloads.mnist1d.workload import BaseMnist1dWorkload


class Mnist1dWorkload(BaseMnist1dWorkload, PyTorchImageClassificationWorkload):
    """MNIST-1D with a PyTorch model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return Mnist1dCNN()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("fc.weight", "fc.bias")
