"""Perplexity from a mean per-token loss, for the language-model workloads."""

from __future__ import annotations

import math
import sys

_MAX_LOG = math.log(sys.float_info.max)


def perplexity(loss: float) -> float:
    """``exp(loss)``, or infinity once that overflows (NaN stays NaN): a diverged run's eval
    reports an unreachable perplexity instead of failing the trial with OverflowError."""
    if math.isnan(loss):
        return math.nan
    return math.exp(loss) if loss < _MAX_LOG else math.inf
