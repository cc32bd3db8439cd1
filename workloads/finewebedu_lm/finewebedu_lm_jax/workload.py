"""The finewebedu_lm workload in JAX: the flax Transformer of ``models``, token windows
(B, T), one logits row per position (B * T, 50257)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.finewebedu_lm.finewebedu_lm_jax.models import TransformerDo
from algoperf.workloads.finewebedu_lm.workload import BaseLmWorkload


class LmWorkload(BaseLmWorkload, JaxImageClassificationWorkload):
    """finewebedu_lm with a flax model: integer windows, per-position rows over the bases."""

    def _build_model(self) -> nn.Module:
        return TransformerDo()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "embed"  # the tied embedding is the output layer

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        return super()._to_framework_batch(self.per_position(batch))

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy_tokens = jnp.zeros((1, self.sequence_length), jnp.int32)
        params = jax.jit(self._model.init)(as_jax_key(rng), dummy_tokens)["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return jax_sharding_utils.replicate(params), None

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float | None = None,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Next-token logits, one row per position: (B * T, 50257). The model has no dropout
        and no state: ``mode``, ``rng``, ``update_batch_norm`` and ``dropout_rate`` change
        nothing (AlgoPerf's accepts and ignores a dropout rate too)."""
        del model_state, mode, rng, update_batch_norm, dropout_rate
        return self._apply(params, augmented_and_preprocessed_input_batch["inputs"]), None

    @functools.partial(jax.jit, static_argnums=0)
    def _apply(self, params: spec.ParameterContainer, tokens: jax.Array) -> jax.Array:
        logits = self._model.apply({"params": params}, tokens)
        return logits.reshape(-1, logits.shape[-1])
