"""The MNIST workload in PyTorch: MLP ``net.layer1 -> net.layer2`` (AlgoPerf's names), inputs
(B, 1, 28, 28)."""

from algoperf.workloads.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.mnist.workload import BaseMnistWorkload


class MnistWorkload(BaseMnistWorkload, PyTorchImageClassificationWorkload):
    """MNIST with a PyTorch model; everything framework-specific comes from the PyTorch base."""
