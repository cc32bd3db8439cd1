"""JAX half of the in-memory image-classification workloads: initialisation and application
of a stateless flax model, the softmax loss and a jitted evaluation step, on top of the
framework-free ``ImageClassificationWorkload``.

A workload supplies its flax module (``_build_model``, from its ``models.py``); models with
state (batch norm) override ``init_model_fn`` and ``model_fn``. Batches are the numpy
pipeline's arrays split across the devices along the batch axis (AlgoPerf v0.6's sharding),
inputs in NHWC layout.
"""

from __future__ import annotations

import abc
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key


class JaxImageClassificationWorkload(ImageClassificationWorkload):
    """The JAX implementation of everything framework-specific in a classification workload."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model = self._build_model()

    @abc.abstractmethod
    def _build_model(self) -> nn.Module:
        """The workload's flax module, configured by its (variant) settings."""

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        # One device_put for the whole dict: cheaper than one per array.
        return jax.device_put(batch, jax_sharding_utils.get_batch_dim_sharding())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy_inputs = jnp.ones((1, *self.input_shape), jnp.float32)
        params = self._model.init(as_jax_key(rng), dummy_inputs)["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        # On the batches' device mesh, so jitted steps see one sharding from the first step on.
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
        """Logits of the batch; a stateless model has no dropout or batch norm, so ``mode``,
        ``rng``, ``update_batch_norm`` and ``dropout_rate`` change nothing."""
        del model_state, mode, rng, update_batch_norm, dropout_rate
        logits = self._model.apply({"params": params},
                                   augmented_and_preprocessed_input_batch["inputs"])
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Masked softmax cross-entropy of integer (or one-hot) labels, with label smoothing."""
        if label_batch.ndim == logits_batch.ndim:
            targets = label_batch
        else:
            targets = jax.nn.one_hot(label_batch, logits_batch.shape[-1])
        targets = optax.smooth_labels(targets, label_smoothing)
        per_example = optax.softmax_cross_entropy(logits_batch, targets)
        if mask_batch is None:
            n_valid = jnp.asarray(per_example.shape[0], per_example.dtype)
        else:
            per_example = per_example * mask_batch
            n_valid = jnp.sum(mask_batch)
        return {"summed": jnp.sum(per_example), "n_valid_examples": n_valid,
                "per_example": per_example}

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch_metrics(
        self, params: spec.ParameterContainer, batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
    ) -> dict[str, spec.Tensor]:
        logits, _ = self.model_fn(params, batch, model_state, spec.ForwardPassMode.EVAL,
                                  None, update_batch_norm=False)
        weights = batch["weights"]
        correct = jnp.sum((jnp.argmax(logits, axis=-1) == batch["targets"]) * weights)
        summed_loss = self.loss_fn(batch["targets"], logits, weights)["summed"]
        return {"accuracy": correct, "loss": summed_loss}
