"""The charlm workload in JAX: the flax Transformer of ``models``, byte inputs (B, 32), one
logits row per position."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.charlm.charlm_jax.models import CharTransformer
from algoperf.workloads.charlm.workload import BaseCharLmWorkload
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key


class CharLmWorkload(BaseCharLmWorkload, JaxImageClassificationWorkload):
    """charlm with a JAX model: integer inputs and per-position rows over the bases."""

    def _build_model(self) -> nn.Module:
        return CharTransformer()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "head"

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        return super()._to_framework_batch(self.per_position(batch))

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy_tokens = jnp.zeros((1, *self.input_shape), jnp.int32)
        params = self._model.init(as_jax_key(rng), dummy_tokens)["params"]
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
        """Next-byte logits, one row per position: (B * T, 256)."""
        logits, state = super().model_fn(params, augmented_and_preprocessed_input_batch,
                                         model_state, mode, rng, update_batch_norm, dropout_rate)
        return logits.reshape(-1, logits.shape[-1]), state
