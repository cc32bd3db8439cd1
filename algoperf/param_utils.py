"""Parameter shape trees and ``ParameterType`` trees for JAX and PyTorch models.

Workloads compute these in ``init_model_fn`` (``workload.param_shapes`` and
``workload.model_params_types``); submissions use the types, e.g. to exempt biases and norm
scales from weight decay. The types come from AlgoPerf v0.6's name heuristics, applied in the
same order so every workload gets the same types as upstream. JAX and PyTorch are imported only
inside the functions that need them.

Knowingly fixed AlgoPerf quirk: AlgoPerf's ``jax_param_types`` returns lower-cased keys
(``dense_0`` for flax's ``Dense_0``), so its type tree does not have the structure of the
parameter tree. Here names are lower-cased only for matching; the keys stay as in the params, so
``jax.tree.map(f, params, types)`` works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from algoperf import spec

ParameterType = spec.ParameterType


def pytorch_param_shapes(model: Any) -> dict[str, spec.ShapeTuple]:
    """``{name: ShapeTuple(shape)}`` over ``model.named_parameters()``."""
    return {name: spec.ShapeTuple(p.shape) for name, p in model.named_parameters()}


def pytorch_param_types(
    param_shapes: Mapping[str, spec.ShapeTuple],
) -> dict[str, spec.ParameterType]:
    """``{name: ParameterType}`` for a flat ``name -> shape`` dict of a PyTorch model."""
    return {name: _pytorch_param_type(name) for name in param_shapes}


def jax_param_shapes(params: spec.ParameterContainer) -> spec.ParameterShapeTree:
    """The params pytree with every array replaced by ``ShapeTuple(array.shape)``."""
    import jax

    return jax.tree.map(lambda x: spec.ShapeTuple(x.shape), params)


def jax_param_types(
    param_shapes: spec.ParameterShapeTree, parent_name: str = ""
) -> dict[str, Any]:
    """A tree like ``param_shapes`` (nested dicts) with a ``ParameterType`` at every leaf.

    ``parent_name`` is the lower-cased ``/``-joined path above ``param_shapes``, which the
    heuristics read (e.g. ``/encoder/batchnorm_0``).
    """
    param_types: dict[str, Any] = {}
    for key, value in param_shapes.items():
        name = key.lower()
        if isinstance(value, Mapping):
            param_types[key] = jax_param_types(value, parent_name=f"{parent_name}/{name}")
        else:
            param_types[key] = _jax_param_type(parent_name, name)
    return param_types


def _pytorch_param_type(name: str) -> spec.ParameterType:
    """The type of a dotted PyTorch parameter name; the checks run in AlgoPerf's order."""
    if "bn" in name:
        return _norm_type(name, "batch norm", ParameterType.BATCH_NORM_SCALE,
                          ParameterType.BATCH_NORM_BIAS)
    if "norm" in name or "ln" in name:
        return _norm_type(name, "layer norm", ParameterType.LAYER_NORM_SCALE,
                          ParameterType.LAYER_NORM_BIAS)
    if "conv" in name:
        return ParameterType.BIAS if "bias" in name else ParameterType.CONV_WEIGHT
    if ("embedding" in name or "embed" in name) and "weight" in name:
        return ParameterType.EMBEDDING
    if "attn" in name or "attention" in name:
        return _pytorch_attention_type(name)
    return ParameterType.BIAS if "bias" in name else ParameterType.WEIGHT


def _norm_type(name: str, kind: str, scale: ParameterType, bias: ParameterType) -> ParameterType:
    if "weight" in name or "scale" in name:
        return scale
    if "bias" in name:
        return bias
    raise ValueError(f"Unrecognized {kind} parameter: {name}.")


def _pytorch_attention_type(name: str) -> spec.ParameterType:
    rules = (
        (("bias",), ParameterType.ATTENTION_BIAS),
        (("in_proj", "qkv"), ParameterType.ATTENTION_QKV),  # qkv: finewebedu_lm's w_qkv
        (("kv_proj",), ParameterType.ATTENTION_KV),
        (("k_proj", "key"), ParameterType.ATTENTION_K),
        (("q_proj", "query"), ParameterType.ATTENTION_Q),
        (("v_proj", "value"), ParameterType.ATTENTION_V),
    )
    for fragments, param_type in rules:
        if any(fragment in name for fragment in fragments):
            return param_type
    if "out" in name and "weight" in name:
        return ParameterType.ATTENTION_OUT
    if "scale" in name:
        return ParameterType.WEIGHT
    raise ValueError(f"Unrecognized attention parameter: {name}.")


def _jax_param_type(parent: str, name: str) -> spec.ParameterType:
    """The type of leaf ``name`` below the lower-cased path ``parent``, in AlgoPerf's order."""
    path = f"{parent}/{name}"
    if "batchnorm" in parent or "bn" in parent:
        return _jax_norm_type(path, name, "batch norm", ParameterType.BATCH_NORM_SCALE,
                              ParameterType.BATCH_NORM_BIAS)
    if "layernorm" in parent or "ln" in parent:
        return _jax_norm_type(path, name, "layer norm", ParameterType.LAYER_NORM_SCALE,
                              ParameterType.LAYER_NORM_BIAS)
    if "conv" in parent:
        return ParameterType.BIAS if "bias" in name else ParameterType.CONV_WEIGHT
    # flax.linen.Embed calls its table "embedding".
    if "embedding" in name or ("embedding" in parent and name == "kernel"):
        return ParameterType.EMBEDDING
    if "attention" in parent:
        return _jax_attention_type(path, parent, name)
    return ParameterType.BIAS if "bias" in name else ParameterType.WEIGHT


def _jax_norm_type(
    path: str, name: str, kind: str, scale: ParameterType, bias: ParameterType
) -> ParameterType:
    if name == "scale":
        return scale
    if name == "bias":
        return bias
    raise ValueError(f"Unrecognized {kind} parameter: {path}.")


def _jax_attention_type(path: str, parent: str, name: str) -> spec.ParameterType:
    if name == "bias":
        return ParameterType.ATTENTION_BIAS
    if name == "kernel":
        for fragment, param_type in (
            ("key", ParameterType.ATTENTION_K),
            ("query", ParameterType.ATTENTION_Q),
            ("value", ParameterType.ATTENTION_V),
            ("out", ParameterType.ATTENTION_OUT),
        ):
            if fragment in parent:
                return param_type
    if "scale" in name:
        return ParameterType.WEIGHT
    if "in_proj_weight" in name:
        return ParameterType.ATTENTION_QKV
    raise ValueError(f"Unrecognized attention parameter: {path}.")
