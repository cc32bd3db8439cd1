"""The LibriSpeech DeepSpeech workload in JAX: the flax ``Deepspeech`` (``models``) in the
Conformer's JAX workload, whose ``model_fn`` (one jitted program per variant and mode), CTC
``loss_fn`` and eval step it keeps. The model state is ``{'batch_stats': ...}``, or ``{}`` for
``_norm_and_spec_aug`` (layer norms only), as AlgoPerf's.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.librispeech_conformer.librispeech_conformer_jax.workload import (
    INIT_SAMPLES,
    LibriSpeechConformerWorkload,
)
from algoperf.workloads.librispeech_deepspeech.librispeech_deepspeech_jax import models
from algoperf.workloads.librispeech_deepspeech.workload import BaseLibriSpeechDeepSpeechWorkload


class LibriSpeechDeepSpeechWorkload(BaseLibriSpeechDeepSpeechWorkload,
                                    LibriSpeechConformerWorkload):
    """LibriSpeech with the JAX DeepSpeech."""

    def _config(self) -> models.DeepspeechConfig:
        return models.DeepspeechConfig(
            use_tanh=self.use_tanh, enable_residual_connections=self.enable_residual_connections,
            enable_decoder_layer_norm=self.enable_decoder_layer_norm,
            layernorm_everywhere=self.layernorm_everywhere,
            freq_mask_count=self.freq_mask_count, time_mask_count=self.time_mask_count)

    def _build_flax_model(self) -> nn.Module:
        return models.Deepspeech(self._config())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy = jnp.zeros((1, INIT_SAMPLES), jnp.float32)
        variables = self._model.init({"params": as_jax_key(rng)}, dummy, dummy, train=False)
        params = variables["params"]
        model_state = {"batch_stats": variables["batch_stats"]} \
            if "batch_stats" in variables else {}
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return (jax_sharding_utils.replicate(params),
                jax_sharding_utils.replicate(model_state))
