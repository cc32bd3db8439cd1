"""The wmt workload in JAX: the flax Transformer of ``models``, one logits row per target
position (B * T, 32000), and beam search (``wmt.decode``) over flax's attention cache."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.wmt import decode
from algoperf.workloads.wmt import workload as constants
from algoperf.workloads.wmt.wmt_jax.models import Transformer
from algoperf.workloads.wmt.workload import BaseWmtWorkload

# Batch keys of packed rows (AlgoPerf's) -> the model's argument names.
PACKING_KEYS = {"inputs_position": "inputs_positions", "targets_position": "targets_positions",
                "inputs_segmentation": "inputs_segmentation",
                "targets_segmentation": "targets_segmentation"}


class WmtWorkload(BaseWmtWorkload, JaxImageClassificationWorkload):
    """wmt with a flax model: token rows, per-position logits, beam-searched BLEU."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache_shapes: dict[tuple[int, ...], Any] = {}

    def _settings(self) -> dict[str, Any]:
        return dict(pre_ln=self.pre_ln, attention_temp=self.attention_temp, glu=self.glu,
                    activation=self.activation)

    def _build_model(self) -> nn.Module:
        return Transformer(**self._settings())

    def _variant(self, **options: Any) -> nn.Module:
        return Transformer(**self._settings(), **options)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "shared_embedding"  # the shared embedding is the output layer

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        return super()._to_framework_batch(self.per_position(batch))

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        params_rng, dropout_rng = jax.random.split(as_jax_key(rng))
        dummy = jnp.ones((2, self.sequence_length), jnp.int32)
        variables = jax.jit(self._variant(deterministic=True).init)(
            {"params": params_rng, "dropout": dropout_rng}, dummy, dummy)
        params = variables["params"]
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
        dropout_rate: float | None = constants.DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits of every target position, (B * T, 32000); dropout (default 0.1, AlgoPerf's)
        in TRAIN mode only. The model has no state."""
        del model_state, update_batch_norm
        batch = augmented_and_preprocessed_input_batch
        training = mode == spec.ForwardPassMode.TRAIN
        rate = constants.DROPOUT_RATE if dropout_rate is None else dropout_rate
        key = as_jax_key(rng) if training else jax.random.PRNGKey(0)
        packing = {argument: batch[key] for key, argument in PACKING_KEYS.items()
                   if key in batch}
        return self._apply(params, batch["inputs"], batch["targets"], packing, key, rate,
                           training), None

    @functools.partial(jax.jit, static_argnums=(0, 7))
    def _apply(self, params, inputs, targets, packing, key, dropout_rate, training):
        model = self._variant(deterministic=not training)
        logits = model.apply({"params": params}, inputs, targets.reshape(inputs.shape[0], -1),
                             **packing, dropout_rate=dropout_rate, rngs={"dropout": key})
        return logits.reshape(-1, logits.shape[-1])

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch_metrics(self, params, batch, model_state):
        """Sums over the batch's real target tokens (weights x ``targets > 0``)."""
        logits = self._apply(params, batch["inputs"], batch["targets"], {},
                             jax.random.PRNGKey(0), 0.0, False)
        targets = batch["targets"]
        weights = batch["weights"] * (targets > 0)
        correct = jnp.sum((jnp.argmax(logits, axis=-1) == targets) * weights)
        summed = self.loss_fn(targets, logits, weights)["summed"]
        return {"accuracy": correct, "loss": summed, "denominator": jnp.sum(weights)}

    # Beam search.

    @functools.partial(jax.jit, static_argnums=(0, 2))
    def _encode(self, params, beam_size, inputs):
        encoded = self._variant(deterministic=True).apply({"params": params}, inputs,
                                                          method=Transformer.encode)
        return jnp.repeat(encoded, beam_size, axis=0), jnp.repeat(inputs, beam_size, axis=0)

    def _empty_cache(self, inputs: jax.Array) -> Any:
        """Zeroed attention caches for ``inputs``' rows and ``max_predict_length`` steps (their
        shapes traced once per input shape)."""
        key = tuple(inputs.shape)
        if key not in self._cache_shapes:
            model = self._variant(deterministic=True, decode=True)
            targets = jnp.ones((inputs.shape[0], self.max_predict_length), jnp.int32)
            self._cache_shapes[key] = jax.eval_shape(
                lambda: model.init(jax.random.PRNGKey(0), inputs, targets)["cache"])
        return jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype),
                            self._cache_shapes[key])

    @functools.partial(jax.jit, static_argnums=0)
    def _beam_step(self, params, cache, encoded, inputs, ids, live_logprobs, rows):
        """One decoding step of every beam: the cache gathered to ``rows``, then the
        ``2 * beam`` best continuations per batch row (``decode.Step``)."""
        cache = jax.tree.map(lambda leaf: leaf[rows] if leaf.ndim else leaf, cache)
        logits, variables = self._variant(deterministic=True, decode=True).apply(
            {"params": params, "cache": cache}, encoded, inputs, ids[:, None],
            mutable=["cache"], method=Transformer.decode_logits)
        batch, beam = live_logprobs.shape
        logprobs = jax.nn.log_softmax(logits[:, 0]).reshape(batch, beam, -1)
        logprobs = logprobs + live_logprobs[:, :, None]
        vocab = logprobs.shape[-1]
        values, flat = jax.lax.top_k(logprobs.reshape(batch, -1), 2 * beam)
        return values, flat // vocab, flat % vocab, variables["cache"]

    def _translate(self, params: spec.ParameterContainer,
                   batch: dict[str, spec.Tensor]) -> np.ndarray:
        inputs = batch["inputs"]
        encoded, flat_inputs = self._encode(params, decode.BEAM_SIZE, inputs)
        state = {"cache": self._empty_cache(flat_inputs)}

        def step(ids, live_logprobs, rows):
            values, beams, tokens, state["cache"] = self._beam_step(
                params, state["cache"], encoded, flat_inputs, jnp.asarray(ids),
                jnp.asarray(live_logprobs), jnp.asarray(rows))
            return np.asarray(values), np.asarray(beams), np.asarray(tokens)

        return decode.best_translations(step, inputs.shape[0],
                                        max_decode_length=self.max_predict_length)
