"""The ogbg workload in JAX: the jraph graph network (``models``), the masked sigmoid
cross-entropy and a jitted eval step. Stateless: the model state is None.

Fixed AlgoPerf quirk: its ``is_output_params`` names ``Dense_17``, a layer neither model has;
here it names the decoder, the last ``Dense``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.common.jitted_apply_jax import jitted_apply
from algoperf.workloads.ogbg.ogbg_jax.models import GNN
from algoperf.workloads.ogbg.workload import DROPOUT_RATE, BaseOgbgWorkload


@functools.cache
def _jitted_init(model: GNN):
    """The model's jitted ``init``, one per configuration and process (its compilation is
    the slow part of initialising on a CPU)."""
    return jax.jit(functools.partial(model.init, train=False))


class OgbgWorkload(BaseOgbgWorkload):
    """ogbg-molpcba with a jraph graph network."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model = GNN(self.num_outputs, latent_dim=self.latent_dim,
                          hidden_dims=self.hidden_dims,
                          num_message_passing_steps=self.num_message_passing_steps,
                          activation_fn_name=self.activation_fn_name)

    def _num_shards(self) -> int:
        return jax.local_device_count()

    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = {**batch, "inputs": jraph.GraphsTuple(*batch["inputs"])}
        return jax.device_put(batch, jax_sharding_utils.get_batch_dim_sharding())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        _, params_rng = jax.random.split(as_jax_key(rng), 2)
        fake_batch = jraph.GraphsTuple(
            n_node=jnp.asarray([1]), n_edge=jnp.asarray([1]), nodes=jnp.ones((1, 9)),
            edges=jnp.ones((1, 3)), globals=jnp.zeros((1, self.num_outputs)),
            senders=jnp.asarray([0]), receivers=jnp.asarray([0]))
        params = _jitted_init(self._model)({"params": params_rng}, fake_batch)["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return jax_sharding_utils.replicate(params), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        decoder = 3 * len(self.hidden_dims) * self.num_message_passing_steps
        return param_key == f"Dense_{decoder}"

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: float = DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits (graphs, 128). TRAIN applies dropout at ``dropout_rate`` with ``rng``;
        there is no batch norm, so ``update_batch_norm`` changes nothing."""
        del update_batch_norm
        if model_state is not None:
            raise ValueError(f"ogbg's model has no state; got model_state {model_state!r}")
        train = mode == spec.ForwardPassMode.TRAIN
        rngs = {"dropout": as_jax_key(rng)} if train and rng is not None else {}
        apply = jitted_apply(self._model, isinstance(dropout_rate, int | float))
        logits = apply(params, augmented_and_preprocessed_input_batch["inputs"], rngs, train,
                      dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Masked sigmoid cross-entropy per (graph, task), as AlgoPerf's: labels smoothed by
        ``optax.smooth_labels`` over the 128 tasks, ``n_valid_examples`` the number of
        unmasked entries. A mask of one value per graph masks all its tasks; no mask keeps
        every entry."""
        if mask_batch is None:
            mask_batch = jnp.ones_like(logits_batch)
        elif mask_batch.ndim == 1:
            mask_batch = jnp.broadcast_to(mask_batch[:, None], logits_batch.shape)
        if not logits_batch.shape == label_batch.shape == mask_batch.shape:
            raise ValueError(f"logits {logits_batch.shape}, targets {label_batch.shape} and "
                             f"weights {mask_batch.shape} must have one shape")
        valid = mask_batch > 0
        labels = optax.smooth_labels(jnp.where(valid, label_batch, -1), label_smoothing)
        losses = (jnp.maximum(logits_batch, 0) - logits_batch * labels
                  + jnp.log(1 + jnp.exp(-jnp.abs(logits_batch))))
        per_example = jnp.where(valid, losses, 0.0)
        return {"summed": jnp.sum(per_example), "n_valid_examples": jnp.sum(mask_batch),
                "per_example": per_example}

    def _eval_outputs(self, params: spec.ParameterContainer, batch: dict[str, Any],
                      model_state: spec.ModelAuxiliaryState) -> tuple[np.ndarray, ...]:
        del model_state
        logits = jitted_apply(self._model, True)(params, batch["inputs"], {}, False, 0.0)
        return tuple(np.asarray(jax.device_get(x), np.float32)
                     for x in (logits, batch["targets"], batch["weights"]))
