"""ImageNet's ResNet-50 (v1.5) in PyTorch: AlgoPerf's architecture (torchvision's) and names.

Module names as AlgoPerf's (torchvision's): ``conv1``, ``bn1``, ``layer1..4`` of 3, 4, 6 and 3
``Bottleneck`` blocks (``conv1..3``, ``bn1..3``, ``downsample.conv``/``.bn``), ``fc``.
Initialisation as AlgoPerf: convolutions LeCun-normal (flax's default), batch norm scale 1
and shift 0 except each block's ``bn3`` scale, ``bn_init_scale``; classifier weights
N(0, 0.01^2) and zero bias. Batch-norm momentum 0.1 (flax's 0.9: PyTorch weighs the new
batch, flax the running average), epsilon 1e-5.

The 3x3 convolutions pad as flax's 'SAME' (``common.pytorch_conv``): the stride-2 ones pad one
row and column after and none before, as AlgoPerf's JAX model does, where torchvision's (and
AlgoPerf's PyTorch model's) one on every side computes a different function from the same
weights; the project follows the JAX definition.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from algoperf.workloads.common.pytorch_conv import Conv2dSame
from algoperf.workloads.common.pytorch_init import pytorch_default_init

Activation = Callable[[torch.Tensor], torch.Tensor]


class Bottleneck(nn.Module):
    """1x1, 3x3 (strided) and 1x1 convolutions with batch norm and a residual connection."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, act: Activation) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = Conv2dSame(width, width, 3, stride=stride, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = act
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)),
                ("bn", nn.BatchNorm2d(out_channels))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.act(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y += x if self.downsample is None else self.downsample(x)
        return self.act(y)


class ResNet50(nn.Module):
    """ResNet-50 for ``num_classes`` classes; ``act`` replaces every ReLU (the variants).

    ``act`` only ever sees a fresh batch-norm output or residual sum, so it may work in
    place (the default ReLU does, as AlgoPerf's): the step then allocates and writes one
    activation map fewer per layer.
    """

    def __init__(self, num_classes: int = 1000, act: Activation = torch.relu_,
                 bn_init_scale: float = 0.0) -> None:
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages = zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)
        for stage, (width, blocks) in enumerate(stages, 1):
            layers = []
            for block in range(blocks):
                stride = 2 if stage > 1 and block == 0 else 1
                layers.append(Bottleneck(channels, width, stride, act))
                channels = width * Bottleneck.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters(bn_init_scale)

    def reset_parameters(self, bn_init_scale: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                pytorch_default_init(module)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, Bottleneck):
                nn.init.constant_(module.bn3.weight, bn_init_scale)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.mean(x, dim=(2, 3)))
