"""Plain values for log files: array scalars become Python scalars, and non-finite floats get
a JSON spelling.

Strict JSON has no NaN or infinity, so the event log and the JSON trial files write them as the
strings "NaN", "Infinity" and "-Infinity" (the spellings of JavaScript and JSON5);
`parse_float` reads them back. A genuine string metric with one of these values would read
back as a float; metrics are numbers, so that ambiguity is accepted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

NONFINITE_SPELLINGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def python_scalar(value: Any) -> Any:
    """``value`` as a Python scalar when it is a one-element array or array scalar (numpy, JAX,
    PyTorch: anything with ``.item()``); anything else unchanged."""
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError, TypeError):  # more than one element
            return value
    return value


def _spell_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON (``allow_nan=False``) can encode.

    Mappings and sequences are converted recursively; array scalars become Python scalars,
    arrays become lists, paths become strings, and NaN/inf floats become their spellings.
    Raises TypeError for anything else, naming the type.
    """
    value = python_scalar(value)
    if isinstance(value, float):
        return _spell_float(value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return json_safe(tolist())
    raise TypeError(f"cannot write a {type(value).__name__} to a JSON log: {value!r}")


def parse_float(value: float | int | str) -> float:
    """A number read from a log: plain numbers, or the spellings of NaN and the infinities."""
    if isinstance(value, str) and value in NONFINITE_SPELLINGS:
        return NONFINITE_SPELLINGS[value]
    return float(value)
