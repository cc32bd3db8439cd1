"""The LibriSpeech DeepSpeech workload in PyTorch: ``DeepspeechEncoderDecoder`` (``models``) in
the Conformer's PyTorch workload, whose ``model_fn``, CTC ``loss_fn``, DDP handling and eval
step it keeps. The batch-norm statistics are the model's buffers; the model state is None.
"""

from __future__ import annotations

from torch import nn

from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch.workload import (
    LibriSpeechConformerWorkload,
)
from algoperf.workloads.librispeech_deepspeech.librispeech_deepspeech_pytorch import models
from algoperf.workloads.librispeech_deepspeech.workload import BaseLibriSpeechDeepSpeechWorkload


class LibriSpeechDeepSpeechWorkload(BaseLibriSpeechDeepSpeechWorkload,
                                    LibriSpeechConformerWorkload):
    """LibriSpeech with the PyTorch DeepSpeech."""

    def _config(self) -> models.DeepspeechConfig:
        return models.DeepspeechConfig(
            use_tanh=self.use_tanh, enable_residual_connections=self.enable_residual_connections,
            enable_decoder_layer_norm=self.enable_decoder_layer_norm,
            layernorm_everywhere=self.layernorm_everywhere,
            freq_mask_count=self.freq_mask_count, time_mask_count=self.time_mask_count)

    def _build_model(self) -> nn.Module:
        return models.DeepspeechEncoderDecoder(self._config())
