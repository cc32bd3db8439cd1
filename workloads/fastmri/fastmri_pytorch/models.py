"""fastmri's U-Net in PyTorch: AlgoPerf's (from fastMRI's), the architecture of the JAX
model (``fastmri_jax.models``) in NCHW.

Module names are AlgoPerf's: ``down_sample_layers.<i>``, ``conv``, ``up_transpose_conv.<i>``
and ``up_conv.<i>`` (the last one ``up_conv.<L-1>.0``, with the 1x1 output conv as
``up_conv.<L-1>.1``); a conv block's layers are ``conv_layers.<0..7>`` (conv, norm,
activation, dropout, twice). Instance norm is ``InstanceNorm2d`` (no affine, eps 1e-5); the
layer-norm variant's ``GroupNorm(1, C, eps=1e-6)`` is flax's ``LayerNorm`` over H, W, C with
per-channel scale and bias. Convolutions start as flax's defaults.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algoperf.pytorch_utils import CustomDropout2d, SequentialWithDropout
from algoperf.workloads.common.pytorch_init import pytorch_default_init


def _activation(use_tanh: bool) -> nn.Module:
    return nn.Tanh() if use_tanh else nn.LeakyReLU(negative_slope=0.2)


class ConvBlock(nn.Module):
    """Two [3x3 conv -> norm -> activation -> channel dropout]."""

    def __init__(self, in_channels: int, out_channels: int, use_tanh: bool,
                 use_layer_norm: bool) -> None:
        super().__init__()
        self._supports_custom_dropout = True

        def norm() -> nn.Module:
            if use_layer_norm:
                return nn.GroupNorm(1, out_channels, eps=1e-6)
            return nn.InstanceNorm2d(out_channels)

        self.conv_layers = SequentialWithDropout(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            norm(), _activation(use_tanh), CustomDropout2d(),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            norm(), _activation(use_tanh), CustomDropout2d())

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        return self.conv_layers(x, dropout_rate)


class TransposeConvBlock(nn.Module):
    """[2x2 stride-2 transposed conv -> instance norm -> activation]."""

    def __init__(self, in_channels: int, out_channels: int, use_tanh: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_channels), _activation(use_tanh))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UNet(nn.Module):
    """(N, H, W) images -> (N, H, W) reconstructions."""

    def __init__(self, num_channels: int = 32, num_pool_layers: int = 4,
                 use_tanh: bool = False, use_layer_norm: bool = False) -> None:
        super().__init__()
        channels = num_channels
        self.down_sample_layers = nn.ModuleList(
            [ConvBlock(1, channels, use_tanh, use_layer_norm)])
        for _ in range(num_pool_layers - 1):
            self.down_sample_layers.append(
                ConvBlock(channels, channels * 2, use_tanh, use_layer_norm))
            channels *= 2
        self.conv = ConvBlock(channels, channels * 2, use_tanh, use_layer_norm)
        self.up_conv = nn.ModuleList()
        self.up_transpose_conv = nn.ModuleList()
        for index in range(num_pool_layers):
            self.up_transpose_conv.append(TransposeConvBlock(channels * 2, channels, use_tanh))
            block = ConvBlock(channels * 2, channels, use_tanh, use_layer_norm)
            if index == num_pool_layers - 1:
                block = SequentialWithDropout(block, nn.Conv2d(channels, 1, kernel_size=1))
            self.up_conv.append(block)
            channels //= 2
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                pytorch_default_init(module)

    def forward(self, x: torch.Tensor, dropout_rate: float = 0.0) -> torch.Tensor:
        stack = []
        output = x[:, None]
        for layer in self.down_sample_layers:
            output = layer(output, dropout_rate)
            stack.append(output)
            output = F.avg_pool2d(output, kernel_size=2, stride=2)
        output = self.conv(output, dropout_rate)
        for transpose, conv in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip = stack.pop()
            output = transpose(output)
            right = int(output.shape[-1] != skip.shape[-1])
            bottom = int(output.shape[-2] != skip.shape[-2])
            if right or bottom:
                output = F.pad(output, [0, right, 0, bottom], mode="reflect")
            output = conv(torch.cat([output, skip], dim=1), dropout_rate)
        return output[:, 0]
