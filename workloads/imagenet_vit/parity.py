"""ImageNet ViT's JAX-to-PyTorch transfer for the parity harness: flax -> AlgoPerf's PyTorch
names.

Dense kernels transpose; the attention's ``DenseGeneral`` kernels (width, heads, head_dim)
and (heads, head_dim, width) flatten to (width, width) first, their biases to (width,); the
MAP head's key and value kernels stack into ``kv_proj`` (keys first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import conv, dense, layer_norm, prefixed


def _attention_projection(params: dict[str, np.ndarray], output: bool = False
                          ) -> dict[str, np.ndarray]:
    """A flax attention projection as an ``nn.Linear``: weight (out, in), bias (out,)."""
    kernel = np.asarray(params["kernel"])
    width = kernel.shape[-1] if output else kernel.shape[0]
    matrix = kernel.reshape(-1, width) if output else kernel.reshape(width, -1)
    return {"weight": matrix.T, "bias": np.asarray(params["bias"]).reshape(-1)}


def _self_attention(params: dict[str, Any]) -> dict[str, np.ndarray]:
    tensors = {}
    for name in ("query", "key", "value"):
        tensors.update(prefixed(name, _attention_projection(params[name])))
    tensors.update(prefixed("out", _attention_projection(params["out"], output=True)))
    return tensors


def _mlp(params: dict[str, Any]) -> dict[str, np.ndarray]:
    names = ["linear1", "glu_linear", "linear2"] if "Dense_2" in params else ["linear1",
                                                                              "linear2"]
    tensors = {}
    for index, name in enumerate(names):
        tensors.update(prefixed(name, dense(params[f"Dense_{index}"])))
    return tensors


def _map_head(params: dict[str, Any]) -> dict[str, np.ndarray]:
    attention = params["MultiHeadDotProductAttention_0"]
    key = _attention_projection(attention["key"])
    value = _attention_projection(attention["value"])
    kv_proj = {"weight": np.concatenate([key["weight"], value["weight"]]),
               "bias": np.concatenate([key["bias"], value["bias"]])}
    return {"probe": np.asarray(params["probe"]),
            **prefixed("mha.q_proj", _attention_projection(attention["query"])),
            **prefixed("mha.kv_proj", kv_proj),
            **prefixed("mha.out_proj", _attention_projection(attention["out"], output=True)),
            **prefixed("layer_norm", layer_norm(params["LayerNorm_0"])),
            **prefixed("mlp", _mlp(params["MlpBlock_0"]))}


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    del model_state  # the ViT has none
    encoder = params["Transformer"]
    state_dict = {**prefixed("conv_patch_extract", conv(params["conv_patch_extract"])),
                  **prefixed("pre_logits", dense(params["pre_logits"])),
                  **prefixed("head", dense(params["head"]))}
    if "encoder_layernorm" in encoder:
        state_dict.update(prefixed("encoder.encoder_norm",
                                   layer_norm(encoder["encoder_layernorm"])))
    blocks = sorted((key for key in encoder if key.startswith("encoderblock_")),
                    key=lambda key: int(key.rsplit("_", 1)[1]))
    for key in blocks:
        block, prefix = encoder[key], f"encoder.net.{key.rsplit('_', 1)[1]}"
        state_dict.update({
            **prefixed(f"{prefix}.layer_norm0", layer_norm(block["LayerNorm_0"])),
            **prefixed(f"{prefix}.layer_norm2", layer_norm(block["LayerNorm_2"])),
            **prefixed(f"{prefix}.self_attention1",
                       _self_attention(block["MultiHeadDotProductAttention_1"])),
            **prefixed(f"{prefix}.mlp3", _mlp(block["MlpBlock_3"]))})
    if "MAPHead_0" in params:
        state_dict.update(prefixed("map", _map_head(params["MAPHead_0"])))
    return state_dict
