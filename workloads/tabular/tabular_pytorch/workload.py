"""The tabular workload in PyTorch: MLP ``net.layer1 -> net.layer2 -> net.layer3``, inputs
(B, 32)."""

from torch import nn

from algoperf import spec
from algoperf.workloads.common.classification_pytorch import PyTorchImageClassificationWorkload
from algoperf.workloads.tabular.tabular_pytorch.models import TabularMLP
from algoperf.workloads.tabular.workload import BaseTabularWorkload


class TabularWorkload(BaseTabularWorkload, PyTorchImageClassificationWorkload):
    """tabular with a PyTorch model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return TabularMLP()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("net.layer3.weight", "net.layer3.bias")
