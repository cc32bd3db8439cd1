"""mnist1d's model in PyTorch: ``convs.0..2`` (1 -> 25 -> 25 -> 25 channels) and ``fc``."""

from __future__ import annotations

import torch
from torch import nn

from algoperf.workloads.common.pytorch_init import pytorch_default_init
from algoperf.workloads.mnist1d.workload import (
    CHANNELS,
    INPUT_SHAPE,
    KERNELS,
    NUM_CLASSES,
    PADDING,
    STRIDE,
    output_positions,
)


class Mnist1dCNN(nn.Module):
    """Strided 1-D convolutions with ReLU on (B, 40, 1) signals (channels last, as the JAX
    model's), then class logits; initialised as flax's default (``pytorch_default_init``)."""

    def __init__(self) -> None:
        super().__init__()
        widths = [INPUT_SHAPE[-1]] + [CHANNELS] * len(KERNELS)
        self.convs = nn.ModuleList(
            nn.Conv1d(fan_in, fan_out, kernel, stride=STRIDE, padding=PADDING)
            for fan_in, fan_out, kernel in zip(widths[:-1], widths[1:], KERNELS, strict=True))
        self.fc = nn.Linear(CHANNELS * output_positions(), NUM_CLASSES)
        for module in (*self.convs, self.fc):
            pytorch_default_init(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (B, W, C) -> (B, C, W)
        for conv in self.convs:
            x = torch.relu(conv(x))
        # Position-major features, as flax flattens its (B, positions, channels) maps.
        return self.fc(x.transpose(1, 2).flatten(1))
