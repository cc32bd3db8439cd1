"""A PyTorch convolution padded as flax's ``padding='SAME'`` pads, whatever the stride.

flax pads a strided 'SAME' convolution asymmetrically: ``total = max((ceil(n / s) - 1) * s +
k - n, 0)`` rows, ``total // 2`` before and the rest after -- for a 3x3 convolution of stride
2 on an even size, none before and one after. PyTorch's ``padding=1`` puts one on each side,
so a torchvision-style port of a flax ResNet computes a different function from the same
weights (AlgoPerf's own JAX and PyTorch ResNets differ this way). Where they differ this
project follows the JAX definition; ``torch.nn.Conv2d`` has no 'same' padding for strides
above 1, hence this class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one spatial axis under flax's 'SAME' rule."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and names) whose input is padded as flax's 'SAME'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh, self.dilation[0])
        left, right = same_padding(x.shape[-1], kw, sw, self.dilation[1])
        # The symmetric part is the convolution's own padding, which copies nothing; only the
        # asymmetric remainder (strided convolutions) is padded explicitly. Padding every
        # input with F.pad made CIFAR's PyTorch training step ~15% slower.
        pad_h, pad_w = min(top, bottom), min(left, right)
        if top != bottom or left != right:
            x = F.pad(x, (left - pad_w, right - pad_w, top - pad_h, bottom - pad_h))
        return F.conv2d(x, self.weight, self.bias, self.stride, (pad_h, pad_w), self.dilation,
                        self.groups)
