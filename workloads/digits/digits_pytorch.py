"""The digits workload in PyTorch: MLP ``net.layer1 -> net.layer2 -> net.layer3``, inputs
(B, 1, 8, 8)."""

from algoperf.workloads.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.digits.workload import BaseDigitsWorkload


class DigitsWorkload(BaseDigitsWorkload, PyTorchImageClassificationWorkload):
    """Digits with a PyTorch model; everything framework-specific comes from the PyTorch base."""
