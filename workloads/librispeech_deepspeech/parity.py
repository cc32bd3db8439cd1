"""DeepSpeech's JAX-to-PyTorch transfer: flax ``Deepspeech`` -> ``DeepspeechEncoderDecoder``.

Dense kernels transpose into ``nn.Linear`` weights; the subsampling kernels go from HWIO to
OIHW under AlgoPerf's name ``kernel``; batch norms' ``scale`` becomes ``weight`` (both add 1),
their statistics ``running_mean``/``running_var``; layer norms keep ``scale``/``bias``. Each
LSTM direction's eight flax cell kernels (input ``ii, if, ig, io``, recurrent ``hi, hf, hg,
ho``, PyTorch's gate order) stack into ``weight_ih``/``weight_hh`` (4 x hidden rows); the
recurrent biases into ``bias_ih``, with ``bias_hh`` zero, since the cell adds the two. The front
end's buffers are constants of ``frontend``.

Training parity: the harness's plain SGD moves PyTorch's two LSTM biases by the same gradient
each, so their sum (the one bias flax's cell has) by twice JAX's step; the two trajectories part
from the second step by design of AlgoPerf's models (its PyTorch parameter count includes the
second bias). ``tests/test_librispeech_deepspeech.py`` holds PyTorch's ``bias_hh`` fixed at
zero and checks the rest of training at the harness's tolerances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algoperf.workloads.common.parity import Tolerance, conv, dense, prefixed
from algoperf.workloads.librispeech_conformer import frontend

_NAMES = ("librispeech_deepspeech", "librispeech_deepspeech_tanh",
          "librispeech_deepspeech_no_resnet", "librispeech_deepspeech_norm_and_spec_aug")
UNRESOLVED_TRAINING_DIFFERENCES = {name: (
    "PyTorch's nn.LSTM has two biases per gate (AlgoPerf's 12,288 extra PyTorch parameters) "
    "where flax's cell has one: plain SGD moves their sum twice as far, so the frameworks' "
    "trajectories differ from step 2 by definition; with bias_hh frozen they agree "
    "(tests/test_librispeech_deepspeech.py)") for name in _NAMES}

# Training parity with bias_hh frozen: as the Conformer's, the harness's SGD at lr 0.05 is
# unstable on these CTC losses (step losses 21.4, 21.6, 23.7, 12.1, 51.6, agreeing across the
# frameworks to 3e-5 relative), which amplifies float32 rounding in the tensors whose gradients
# sum over every (frame, bin) position: after the 5 steps JAX and PyTorch differed by up to
# 9.6e-4 in the first subsampling bias, 3.9e-4 in its kernel, 1.7e-4 in the dense weights,
# 4.9e-5 in the LSTM input weights and 5e-5 in the batch-norm statistics (CPU, jax 0.7.0,
# torch 2.13, audio of 16,000 samples). These allow about 2.5x the measured differences.
TOLERANCES = {
    "params:bias": Tolerance(rtol=1e-4, atol=2.5e-3),
    "params:kernel": Tolerance(rtol=1e-4, atol=1e-3),
    "params:weight": Tolerance(rtol=1e-4, atol=5e-4),
    **{f"params:{kind}_l0{suffix}": Tolerance(rtol=1e-4, atol=2e-4)
       for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for suffix in ("", "_reverse")},
    "final_model_state": Tolerance(rtol=1e-4, atol=1.5e-4),
}

# Output parity in TRAIN mode, where every batch norm divides by the batch's own standard
# deviation. Without the residual path (_no_resnet) each layer's input is such a batch norm of
# the previous layer's output, 9 in a row: its TRAIN logits differed by up to 3.1e-5 (EVAL, on
# the running averages: 3e-6; the losses agreed to 5e-7 relative), so about 3x that. The other
# rows' TRAIN logits came within 1e-5 on one machine but on another (same library versions,
# before and after the traced-rate dropout change) by 2.09e-5 (base) and 1.74e-5 (_tanh),
# with the EVAL logits at 3.9e-6 and 4.9e-6: about 2.5x the larger.
ROW_TOLERANCES = {
    "librispeech_deepspeech_no_resnet": {"train_logits": Tolerance(rtol=1e-5, atol=1e-4)},
    **{name: {"train_logits": Tolerance(rtol=1e-5, atol=5e-5)} for name in (
        "librispeech_deepspeech", "librispeech_deepspeech_tanh",
        "librispeech_deepspeech_norm_and_spec_aug")}}

INPUT_GATES = ("ii", "if", "ig", "io")
HIDDEN_GATES = ("hi", "hf", "hg", "ho")


def lstm_direction(cell: dict[str, Any], suffix: str = "") -> dict[str, np.ndarray]:
    """One flax ``OptimizedLSTMCell``'s parameters as ``nn.LSTM``'s for one direction
    (``suffix`` ``'_reverse'`` for the backward one)."""
    def stacked(gates, part):
        return np.concatenate([np.asarray(cell[gate][part]).T if part == "kernel"
                               else np.asarray(cell[gate][part]) for gate in gates])

    bias = stacked(HIDDEN_GATES, "bias")
    return {f"weight_ih_l0{suffix}": stacked(INPUT_GATES, "kernel"),
            f"weight_hh_l0{suffix}": stacked(HIDDEN_GATES, "kernel"),
            f"bias_ih_l0{suffix}": bias, f"bias_hh_l0{suffix}": np.zeros_like(bias)}


def _normalization(params: dict[str, Any], stats: dict[str, Any] | None
                   ) -> dict[str, np.ndarray]:
    """A module's ``BatchNorm_0`` (with its statistics) or ``LayerNorm_0`` under AlgoPerf's
    PyTorch attribute names."""
    if "LayerNorm_0" in params:
        norm = params["LayerNorm_0"]
        return prefixed("normalization_layer", {"scale": np.asarray(norm["scale"]),
                                                "bias": np.asarray(norm["bias"])})
    norm, moments = params["BatchNorm_0"], stats["BatchNorm_0"]
    return prefixed("bn_normalization_layer", {
        "weight": np.asarray(norm["scale"]), "bias": np.asarray(norm["bias"]),
        "running_mean": np.asarray(moments["mean"]), "running_var": np.asarray(moments["var"])})


def _numbered(params: dict[str, Any], prefix: str) -> list[str]:
    return sorted((k for k in params if k.startswith(prefix)),
                  key=lambda k: int(k.rsplit("_", 1)[1]))


def jax_to_pytorch(params: dict[str, Any], model_state: Any) -> dict[str, np.ndarray]:
    stats = (model_state or {}).get("batch_stats", {})
    subsample = params["Subsample_0"]
    state = {
        "preprocessor.stft.window": frontend.window()[None, None, :, None],
        "preprocessor._normalizer_mean": frontend.LOG_MEL_MEAN[None, None, :, None],
        "preprocessor._normalizer_stddev": frontend.LOG_MEL_STDDEV[None, None, :, None],
        **prefixed("lin", dense(params["Dense_0"])),
    }
    for number in (1, 2):
        conv_params = subsample[f"Conv2dSubsampling_{number - 1}"]
        state[f"subsample.conv{number}.kernel"] = conv(conv_params)["weight"]
        state[f"subsample.conv{number}.bias"] = np.asarray(conv_params["bias"])
    state.update(prefixed("subsample.lin", dense(subsample["Dense_0"])))
    for index, key in enumerate(_numbered(params, "BatchRNN_")):
        layer, prefix = params[key], f"lstms.{index}"
        state.update(prefixed(prefix, _normalization(layer, stats.get(key))))
        directions = layer["LSTM_0"]["LSTM"]
        state.update(prefixed(f"{prefix}.lstm", {
            **lstm_direction(directions["LSTMSequenceEncoder_0"]["cell"]),
            **lstm_direction(directions["LSTMSequenceEncoder_1"]["cell"], "_reverse")}))
    for index, key in enumerate(_numbered(params, "FeedForwardModule_")):
        layer, prefix = params[key], f"ffns.{index}"
        state.update(prefixed(prefix, _normalization(layer, stats.get(key))))
        state.update(prefixed(f"{prefix}.lin", dense(layer["Dense_0"])))
    if "LayerNorm_0" in params:
        state.update(prefixed("ln", {"scale": np.asarray(params["LayerNorm_0"]["scale"]),
                                     "bias": np.asarray(params["LayerNorm_0"]["bias"])}))
    return state
