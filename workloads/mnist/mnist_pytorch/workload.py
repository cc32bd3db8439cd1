"""The MNIST workload in PyTorch: MLP ``net.layer1 -> net.layer2`` (AlgoPerf's names), inputs
(B, 1, 28, 28)."""

from torch import nn

from algoperf import spec
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.mnist.mnist_pytorch.models import MnistMLP
from algoperf.workloads.mnist.workload import BaseMnistWorkload


class MnistWorkload(BaseMnistWorkload, PyTorchImageClassificationWorkload):
    """MNIST with a PyTorch model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return MnistMLP()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("net.layer2.weight", "net.layer2.bias")
