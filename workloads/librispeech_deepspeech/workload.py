"""The LibriSpeech DeepSpeech workload, framework-free part: the Conformer workload's data,
sizes and evaluation with DeepSpeech's settings.

AlgoPerf's ``librispeech_deepspeech`` subclasses its Conformer workload and changes only the
model, the targets and the budget; this does the same (``BaseLibriSpeechConformerWorkload``
holds the input queues, the split sizes and the CTC loss / WER evaluation, and the registry
row the targets and budget). The variants are settings: ``use_tanh`` (tanh for ReLU),
``enable_residual_connections``, ``enable_decoder_layer_norm``, ``layernorm_everywhere`` (layer
norm for every batch norm, so no batch statistics), the SpecAugment mask counts
``freq_mask_count`` / ``time_mask_count`` and ``eval_batch_size``.
"""

from __future__ import annotations

from typing import ClassVar

from algoperf.workloads.librispeech_conformer.workload import BaseLibriSpeechConformerWorkload


class BaseLibriSpeechDeepSpeechWorkload(BaseLibriSpeechConformerWorkload):
    """LibriSpeech with CTC and the DeepSpeech model, framework-free; the JAX and PyTorch
    classes combine it with the Conformer's framework classes. ``reduced_settings`` (shorter
    padded audio for the CPU test suites) is the Conformer's: no parameter depends on it."""

    workload_name = "librispeech_deepspeech"
    variant_settings: ClassVar[tuple[str, ...]] = (
        "use_tanh", "enable_residual_connections", "enable_decoder_layer_norm",
        "layernorm_everywhere", "freq_mask_count", "time_mask_count", "eval_batch_size")
    use_tanh = False
    enable_residual_connections = True
    enable_decoder_layer_norm = True
    layernorm_everywhere = False
    freq_mask_count = 2
    time_mask_count = 10
    eval_batch_size = 256  # a setting here (128 in _norm_and_spec_aug), a property upstream
