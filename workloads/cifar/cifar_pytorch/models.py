"""CIFAR's model in PyTorch: ResNet-18 with a CIFAR stem (AlgoPerf's, from torchvision).

Module names follow AlgoPerf's (torchvision's): ``conv1``, ``bn1``, ``layer1..4`` of two
``BasicBlock`` each (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample.conv``/``.bn``), ``fc``.
Initialisation as AlgoPerf: convolutions LeCun-normal (truncated at two standard deviations,
as flax's default), batch norm scale 1 and shift 0 except the zero scale of each block's
``bn2``, classifier weights N(0, 0.01^2) and zero bias. Batch-norm momentum 0.1 (flax's 0.9),
epsilon 1e-5. The 3x3 convolutions pad as flax's 'SAME' (``common.pytorch_conv``), so the
stride-2 ones pad one row and column after and none before, as AlgoPerf's JAX model does;
torchvision's (and AlgoPerf's PyTorch model's) one on every side computes a different function
from the same weights.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from algoperf.workloads.common.pytorch_conv import Conv2dSame
from algoperf.workloads.common.pytorch_init import pytorch_default_init


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return Conv2dSame(in_channels, out_channels, 3, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)),
                ("bn", nn.BatchNorm2d(channels))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(shortcut + y)


class ResNet18(nn.Module):
    """3x3 stem with 64 channels, four stages of two blocks (64, 128, 256, 512 channels; the
    last three halve the resolution), 4x4 average pooling, a linear classifier."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        channels = 64
        for stage, width in enumerate((64, 128, 256, 512), 1):
            stride = 1 if stage == 1 else 2
            setattr(self, f"layer{stage}", nn.Sequential(BasicBlock(channels, width, stride),
                                                         BasicBlock(width, width, 1)))
            channels = width
        self.fc = nn.Linear(512, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                pytorch_default_init(module)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = nn.functional.avg_pool2d(x, 4)
        return self.fc(torch.flatten(x, 1))
