"""PyTorch initialisers that start models as their flax twins start.

flax's default Dense and Conv kernels are LeCun normal: a normal truncated at two standard
deviations and rescaled so the truncated draw has variance 1/fan_in. AlgoPerf's PyTorch ports
use the same rule (its ``init_utils.pytorch_default_init``), so both frameworks begin
statistically alike.
"""

from __future__ import annotations

import math

from torch import nn

# Standard deviation of a standard normal truncated to [-2, 2]; flax rescales by it.
TRUNCATED_NORMAL_STD = 0.87962566103423978


def pytorch_default_init(module: nn.Linear | nn.Conv2d | nn.Conv1d) -> None:
    """Re-initialises ``module`` in place as flax's default: LeCun-normal weight, zero bias."""
    fan_in = math.prod(module.weight.shape[1:])
    std = math.sqrt(1.0 / fan_in) / TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
