"""The Conformer's JAX-to-PyTorch transfer: flax ``Conformer`` -> ``ConformerEncoderDecoder``.

Dense kernels transpose into ``nn.Linear`` weights; the attention's query, key and value
kernels (512, 8, 64) are flattened and stacked into the fused ``in_proj`` (1536, 512), its
output kernel (8, 64, 512) into ``out_proj``; the subsampling kernels go from HWIO to OIHW
under AlgoPerf's name ``kernel``; layer and batch norms keep their ``scale``/``bias`` names
(both add 1 to the scale); the batch statistics become ``running_mean``/``running_var``.
The front end's buffers are constants of ``frontend``, not weights, and are transferred as the
PyTorch model holds them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import Tolerance, conv, dense, prefixed
from algoperf.workloads.librispeech_conformer import frontend

# Training parity: the harness's plain SGD at lr 0.05 on per-token CTC losses near 20 is
# unstable for this model (the mean loss of the 5 steps went 22, 24, 34, 82, 24 in both
# frameworks, agreeing to 5e-5 relative), which amplifies float32 rounding in the tensors whose
# gradients sum over every (frame, bin) position of the batch: after the 5 steps JAX and
# PyTorch differed by up to 8.4e-4 in the first subsampling bias, 1.8e-4 in the second, 5.2e-5
# in the subsampling kernels and 5.0e-5 in the output and subsampling dense weights (CPU,
# jax 0.7.0, torch 2.13, audio of 16,000 samples). Every other tensor stayed within the
# default (1e-5 absolute). These allow about 2.5x the measured differences.
TOLERANCES = {
    "params:bias": Tolerance(rtol=1e-4, atol=2e-3),
    "params:kernel": Tolerance(rtol=1e-4, atol=2e-4),
    "params:weight": Tolerance(rtol=1e-4, atol=2e-4),
}


def _norm(params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"scale": np.asarray(params["scale"]), "bias": np.asarray(params["bias"])}


def _attention(params: dict[str, Any]) -> dict[str, np.ndarray]:
    def flat(name):
        kernel = np.asarray(params[name]["kernel"])
        return kernel.reshape(kernel.shape[0], -1).T, np.asarray(params[name]["bias"]).ravel()

    weights, biases = zip(*(flat(name) for name in ("query", "key", "value")), strict=True)
    out = np.asarray(params["out"]["kernel"])
    return {"in_proj.weight": np.concatenate(weights), "in_proj.bias": np.concatenate(biases),
            "out_proj.weight": out.reshape(-1, out.shape[-1]).T,
            "out_proj.bias": np.asarray(params["out"]["bias"]),
            "qs.scale": np.asarray(params["QueryScaler_0"]["scale"])}


def _subsampling(params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"kernel": conv(params)["weight"], "bias": np.asarray(params["bias"]),
            "paddings_kernel": np.ones((1, 1, 1), np.float32)}


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    stats = model_state["batch_stats"]
    width = params["Subsample_0"]["Dense_0"]["kernel"].shape[1]
    half = width // 2
    inv = np.exp(np.arange(half, dtype=np.float32) * -(np.log(10_000.0) / max(half - 1, 1)))
    state = {
        "preprocessor.stft.window": frontend.window()[None, None, :, None],
        "preprocessor._normalizer_mean": frontend.LOG_MEL_MEAN[None, None, :, None],
        "preprocessor._normalizer_stddev": frontend.LOG_MEL_STDDEV[None, None, :, None],
        **prefixed("subsample.conv1", _subsampling(params["Subsample_0"]["Conv2dSubsampling_0"])),
        **prefixed("subsample.conv2", _subsampling(params["Subsample_0"]["Conv2dSubsampling_1"])),
        **prefixed("subsample.linear", dense(params["Subsample_0"]["Dense_0"])),
        "subsample.pos_encode.inv_timescales": inv.astype(np.float32)[None, None, :],
        **prefixed("ln", _norm(params["LayerNorm_0"])),
        **prefixed("lin", dense(params["Dense_0"])),
    }
    blocks = sorted((k for k in params if k.startswith("ConformerBlock_")),
                    key=lambda k: int(k.rsplit("_", 1)[1]))
    for index, key in enumerate(blocks):
        block, prefix = params[key], f"conformers.{index}"
        for number, name in ((0, "ff1"), (1, "ff2")):
            ff = block[f"FeedForwardModule_{number}"]
            state.update(prefixed(f"{prefix}.{name}.ln", _norm(ff["LayerNorm_0"])))
            state.update(prefixed(f"{prefix}.{name}.linear1", dense(ff["Dense_0"])))
            state.update(prefixed(f"{prefix}.{name}.linear2", dense(ff["Dense_1"])))
        mhsa = block["MultiHeadedSelfAttention_0"]
        state.update(prefixed(f"{prefix}.mhsa.ln", _norm(mhsa["LayerNorm_0"])))
        state.update(prefixed(f"{prefix}.mhsa.self_attention",
                              _attention(mhsa["MultiHeadDotProductAttention_0"])))
        conv_block = block["ConvolutionBlock_0"]
        block_stats = stats[key]["ConvolutionBlock_0"]["BatchNorm_0"]
        state.update(prefixed(f"{prefix}.conv.ln", _norm(conv_block["LayerNorm_0"])))
        for number in range(3):
            state.update(prefixed(f"{prefix}.conv.lin{number + 1}",
                                  dense(conv_block[f"Dense_{number}"])))
        state.update(prefixed(f"{prefix}.conv.conv1", conv(conv_block["Conv_0"])))
        state.update(prefixed(f"{prefix}.conv.bn", {
            **_norm(conv_block["BatchNorm_0"]), "running_mean": block_stats["mean"],
            "running_var": block_stats["var"],
            "dim": np.array([width], np.float32)}))
        if "LayerNorm_0" in block:
            state.update(prefixed(f"{prefix}.ln", _norm(block["LayerNorm_0"])))
    return state
