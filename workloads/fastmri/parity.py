"""fastmri's JAX-to-PyTorch transfer for the parity harness: the flax U-Net -> AlgoPerf's
PyTorch ``UNet``.

``ConvBlock_<i>`` are the encoder blocks (``down_sample_layers.<i>``), then the bottleneck
(``conv``), then the decoder blocks (``up_conv.<j>``, the last one ``up_conv.<L-1>.0``); their
``Conv_0``/``Conv_1`` -> ``conv_layers.0``/``conv_layers.4`` and ``LayerNorm_0``/``_1`` ->
``conv_layers.1``/``conv_layers.5``. ``TransposeConvBlock_<j>/ConvTranspose_0`` ->
``up_transpose_conv.<j>.layers.0``; ``Conv_0`` -> ``up_conv.<L-1>.1``.

flax's ``ConvTranspose`` (``transpose_kernel=False``) applies its kernel as a convolution of
the dilated input; PyTorch's ``ConvTranspose2d`` is the gradient of a convolution, which
applies the same weights spatially flipped. The kernel (kh, kw, in, out) therefore becomes
the weight (in, out, kh, kw) flipped in both spatial axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import Tolerance, conv, layer_norm, prefixed

# Measured on the synthetic 32 x 32 slices at batch 8 (JAX 0.7.0, torch 2.13 CPU): output
# logits differ by up to 1.3e-5 (instance norm computes E[x^2] - E[x]^2 in flax and a
# two-pass variance in PyTorch, over maps down to 2 x 2 at the bottleneck, and JAX 0.7.0's
# float32 reductions are coarse; see cifar's parity notes), gradients of one step by ~3e-6
# (relative 3e-5), and the second step's loss by 2e-7: the frameworks compute the same
# function and gradient. The harness's 5 SGD steps at lr 0.05 are far from gentle for this
# model, though: the L1 loss falls from 1.2 to 0.43 and the parameters move by up to 0.5, and
# the rounding differences grow about twentyfold per step from the third step on (tanh
# variant: 4e-5, 7.6e-4, 1.8e-3 in the last three losses; at lr 0.01 the fifth loss agrees
# to 1.1e-5). The training atol below allow about twice the worst measured (parameters
# 1.6e-3 apart, losses 1.8e-3). A wrong layer mapping (an unflipped transposed-conv kernel,
# a swapped norm) moves the outputs by 1e-2 or more, far past the output tolerances.
TOLERANCES = {
    "logits": Tolerance(rtol=1e-5, atol=3e-5),
    "train_logits": Tolerance(rtol=1e-5, atol=3e-5),
    "train_loss": Tolerance(rtol=1e-4, atol=4e-3),
    "params": Tolerance(rtol=1e-4, atol=3e-3),
}

BLOCK_LAYERS = {"Conv_0": "conv_layers.0", "LayerNorm_0": "conv_layers.1",
                "Conv_1": "conv_layers.4", "LayerNorm_1": "conv_layers.5"}


def _transpose_conv(params: dict[str, Any]) -> dict[str, np.ndarray]:
    kernel = np.asarray(params["kernel"])
    return {"weight": np.ascontiguousarray(kernel[::-1, ::-1].transpose(2, 3, 0, 1))}


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    del model_state  # the model has none
    blocks = sorted((key for key in params if key.startswith("ConvBlock_")),
                    key=lambda key: int(key.rsplit("_", 1)[1]))
    pools = (len(blocks) - 1) // 2
    names = ([f"down_sample_layers.{i}" for i in range(pools)] + ["conv"]
             + [f"up_conv.{j}" for j in range(pools - 1)] + [f"up_conv.{pools - 1}.0"])
    state_dict = prefixed(f"up_conv.{pools - 1}.1", conv(params["Conv_0"]))
    for key, name in zip(blocks, names, strict=True):
        for jax_layer, torch_layer in BLOCK_LAYERS.items():
            if jax_layer in params[key]:
                converter = conv if jax_layer.startswith("Conv") else layer_norm
                state_dict.update(prefixed(f"{name}.{torch_layer}",
                                           converter(params[key][jax_layer])))
    for j in range(pools):
        state_dict.update(prefixed(f"up_transpose_conv.{j}.layers.0", _transpose_conv(
            params[f"TransposeConvBlock_{j}"]["ConvTranspose_0"])))
    return state_dict
