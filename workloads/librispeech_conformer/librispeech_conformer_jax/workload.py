"""The LibriSpeech Conformer workload in JAX: the flax ``Conformer`` (``models``), CTC loss by
``optax.ctc_loss`` and a jitted eval step. The model state is ``{'batch_stats': ...}``.

``model_fn`` returns AlgoPerf's ``((logits, logit_paddings), model_state)``; ``loss_fn``
takes ``(targets, target_paddings)`` and that pair.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.librispeech_conformer.librispeech_conformer_jax import models
from algoperf.workloads.librispeech_conformer.workload import BaseLibriSpeechConformerWorkload

INIT_SAMPLES = 1_000  # the dummy input of init: the parameters do not depend on its length


def ctc_loss(label_batch: tuple[jax.Array, jax.Array], logits_batch: tuple[jax.Array, jax.Array],
             mask_batch: jax.Array | None = None) -> dict[str, jax.Array]:
    """AlgoPerf's CTC ``loss_fn``: ``optax.ctc_loss`` (blank 0) of the log-softmax per
    utterance, times the mask (one value per utterance); ``n_valid_examples`` is the number of
    target tokens of the unmasked utterances (at least 1), so summed / n_valid is the loss per
    token."""
    logits, logit_paddings = logits_batch
    targets, target_paddings = label_batch
    per_example = optax.ctc_loss(nn.log_softmax(logits), logit_paddings, targets,
                                 target_paddings, blank_id=0)
    tokens = 1 - target_paddings
    if mask_batch is not None:
        per_example = per_example * mask_batch
        tokens = tokens * (mask_batch[:, None] > 0)
    return {"summed": jnp.sum(per_example), "n_valid_examples": jnp.maximum(jnp.sum(tokens), 1),
            "per_example": per_example}


def _apply_model(model: nn.Module, params, model_state, audio, paddings, rngs, specaug_key,
                 train: bool, update_batch_norm: bool, use_running_average_bn: bool,
                 dropout_rate: float | jax.Array):
    """The model's outputs and updated batch statistics."""
    variables = {"params": params, **model_state}
    return model.apply(variables, audio, paddings, train=train,
                       update_batch_norm=update_batch_norm,
                       use_running_average_bn=use_running_average_bn,
                       dropout_rate=dropout_rate, specaug_key=specaug_key, rngs=rngs,
                       mutable=["batch_stats"])


# ``_apply_model`` jitted, one program per mode. Keyed on the (hashable) flax module, so every
# workload of one variant shares the compiled program; op by op, the model's thousands of
# operations would each dispatch on their own (tens of seconds a call on the CPU). Inside a
# submission's jitted step this is inlined. ``dropout_rate`` is static when it is a Python
# number, a traced argument otherwise (AlgoPerf's JAX baselines pass it into their jitted step).
_apply = jax.jit(_apply_model, static_argnums=(0, 7, 8, 9, 10))
_apply_traced_rate = jax.jit(_apply_model, static_argnums=(0, 7, 8, 9))


@functools.partial(jax.jit, static_argnums=(0,))
def _eval_step(model: nn.Module, params, batch, model_state):
    """Summed CTC loss, target tokens, per-frame argmax ids and logit paddings of one eval
    batch (padding rows masked)."""
    (logits, paddings), _ = _apply(model, params, model_state, *batch["inputs"], {}, None,
                                   False, False, True, 0.0)
    loss = ctc_loss(batch["targets"], (logits, paddings), batch["weights"])
    tokens = jnp.sum((1 - batch["targets"][1]) * (batch["weights"][:, None] > 0))
    return loss["summed"], tokens, jnp.argmax(logits, -1), paddings


class LibriSpeechConformerWorkload(BaseLibriSpeechConformerWorkload):
    """LibriSpeech with the JAX Conformer."""

    def _config(self) -> models.ConformerConfig:
        return models.ConformerConfig(attention_temperature=self.attention_temperature,
                                      use_post_layer_norm=self.use_post_layer_norm,
                                      activation="gelu" if self.use_gelu else "swish")

    def _build_flax_model(self) -> nn.Module:
        return models.Conformer(self._config())

    @functools.cached_property
    def _model(self) -> nn.Module:
        return self._build_flax_model()

    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        return jax.device_put(batch, jax_sharding_utils.get_batch_dim_sharding())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy = jnp.zeros((1, INIT_SAMPLES), jnp.float32)
        variables = self._model.init({"params": as_jax_key(rng)}, dummy, dummy, train=False)
        params, batch_stats = variables["params"], variables["batch_stats"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return (jax_sharding_utils.replicate(params),
                {"batch_stats": jax_sharding_utils.replicate(batch_stats)})

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Dense_0"

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        use_running_average_bn: bool | None = None,
        dropout_rate: float = models.DROPOUT_RATE,
    ) -> tuple[tuple[spec.Tensor, spec.Tensor], spec.ModelAuxiliaryState]:
        """``(logits, logit_paddings)`` and the model state. TRAIN applies SpecAugment and
        dropout at ``dropout_rate`` from ``rng``; with ``update_batch_norm`` the batch norms
        use the batch's statistics of the real frames and update their running averages."""
        audio, paddings = augmented_and_preprocessed_input_batch["inputs"]
        train = mode == spec.ForwardPassMode.TRAIN
        rngs, specaug_key = {}, None
        if train and rng is not None:
            dropout_key, specaug_key = jax.random.split(as_jax_key(rng))
            rngs = {"dropout": dropout_key}
        if use_running_average_bn is None:
            use_running_average_bn = not update_batch_norm
        outputs, new_state = self._apply(params, model_state, audio, paddings, rngs,
                                         specaug_key, train, update_batch_norm,
                                         use_running_average_bn, dropout_rate)
        return outputs, new_state if update_batch_norm else model_state

    def _apply(self, params, model_state, audio, paddings, rngs, specaug_key, train: bool,
               update_batch_norm: bool, use_running_average_bn: bool,
               dropout_rate: float | jax.Array):
        apply = _apply if isinstance(dropout_rate, int | float) else _apply_traced_rate
        return apply(self._model, params, model_state, audio, paddings, rngs, specaug_key,
                     train, update_batch_norm, use_running_average_bn, dropout_rate)

    def loss_fn(
        self,
        label_batch: tuple[spec.Tensor, spec.Tensor],
        logits_batch: tuple[spec.Tensor, spec.Tensor],
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """CTC per utterance (``ctc_loss``); label smoothing does not apply to CTC and is
        ignored, as AlgoPerf ignores it."""
        del label_smoothing
        return ctc_loss(label_batch, logits_batch, mask_batch)

    def _eval_step(self, params, batch, model_state):
        return _eval_step(self._model, params, batch, model_state)

    def _eval_outputs(self, params, batch, model_state):
        summed, tokens, frame_ids, paddings = jax.device_get(
            self._eval_step(params, batch, model_state))
        targets, target_paddings = jax.device_get(batch["targets"])
        arrays = {"frame_ids": frame_ids, "logit_paddings": paddings, "targets": targets,
                  "target_paddings": target_paddings,
                  "weights": jax.device_get(batch["weights"])}
        return float(summed), float(tokens), {k: np.asarray(v) for k, v in arrays.items()}
