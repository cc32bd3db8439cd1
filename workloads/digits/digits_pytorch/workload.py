"""The digits workload in PyTorch: MLP ``net.layer1 -> net.layer2 -> net.layer3``, inputs
(B, 1, 8, 8)."""

from torch import nn

from algoperf import spec
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.digits.digits_pytorch.models import DigitsMLP
from algoperf.workloads.digits.workload import BaseDigitsWorkload


class DigitsWorkload(BaseDigitsWorkload, PyTorchImageClassificationWorkload):
    """Digits with a PyTorch model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return DigitsMLP(self.activation)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("net.layer3.weight", "net.layer3.bias")
