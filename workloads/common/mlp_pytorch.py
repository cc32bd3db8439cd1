"""The multi-layer perceptron of the MLP dev workloads, in PyTorch (AlgoPerf's MNIST model).

Parameter names as AlgoPerf's MNIST model: ``net.layer1.weight``, ``net.layer1.bias``, ...;
the activation modules between them (``net.layer1_<activation>``) hold no parameters. Linear
layers start like flax's ``nn.Dense`` (``pytorch_init.pytorch_default_init``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from algoperf.workloads.common.pytorch_init import pytorch_default_init

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Flattens the images, then hidden linear layers with ``activation``, then class logits."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], activation: str,
                 num_classes: int) -> None:
        super().__init__()
        widths = [in_features, *hidden_sizes, num_classes]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False), 1):
            layers[f"layer{index}"] = nn.Linear(fan_in, fan_out)
            if index < len(widths) - 1:
                layers[f"layer{index}_{activation}"] = ACTIVATIONS[activation]()
        self.net = nn.Sequential(layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.net:
            if isinstance(module, nn.Linear):
                pytorch_default_init(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
