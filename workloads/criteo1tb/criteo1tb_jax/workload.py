"""The criteo1tb workload in JAX: DLRM-small or its residual variant (``models``), the masked
sigmoid cross-entropy and a jitted eval step. Stateless: the model state is None."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.common.jitted_apply_jax import jitted_apply
from algoperf.workloads.criteo1tb.criteo1tb_jax.models import DLRMResNet, DlrmSmall
from algoperf.workloads.criteo1tb.input_pipeline import NUM_INPUTS
from algoperf.workloads.criteo1tb.workload import DROPOUT_RATE, BaseCriteo1TbDlrmSmallWorkload

INIT_BATCH = 2


@functools.cache
def _jitted_init(model):
    """The model's jitted ``init``, one per configuration and process."""
    return jax.jit(functools.partial(model.init, train=False))


def per_example_sigmoid_cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
    """``-(t log sigmoid(z) + (1 - t) log sigmoid(-z))``, AlgoPerf's formula (log-sigmoid on
    both sides, stable for large logits)."""
    return -(targets * jax.nn.log_sigmoid(logits) + (1 - targets) * jax.nn.log_sigmoid(-logits))


class Criteo1TbDlrmSmallWorkload(BaseCriteo1TbDlrmSmallWorkload):
    """Criteo 1TB with a flax DLRM."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_resnet:
            self._model = DLRMResNet(vocab_size=self.vocab_size,
                                     mlp_bottom_dims=self.mlp_bottom_dims,
                                     mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim)
        else:
            self._model = DlrmSmall(vocab_size=self.vocab_size,
                                    mlp_bottom_dims=self.mlp_bottom_dims,
                                    mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim,
                                    use_layer_norm=self.use_layer_norm,
                                    embedding_init_multiplier=self.embedding_init_multiplier)

    @property
    def eval_batch_size(self) -> int:
        return 131_072

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        return jax.device_put(batch, jax_sharding_utils.get_batch_dim_sharding())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        params_rng, _ = jax.random.split(as_jax_key(rng))
        params = _jitted_init(self._model)({"params": params_rng},
                                           jnp.ones((INIT_BATCH, NUM_INPUTS)))["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return jax_sharding_utils.replicate(params), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == f"Dense_{len(self.mlp_bottom_dims) + len(self.mlp_top_dims) - 1}"

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
        """Logits (N, 1). TRAIN applies dropout at ``dropout_rate`` (0 by default) with
        ``rng``; no batch norm."""
        del model_state, update_batch_norm
        train = mode == spec.ForwardPassMode.TRAIN
        rngs = {"dropout": as_jax_key(rng)} if train and rng is not None else {}
        logits = jitted_apply(self._model, isinstance(dropout_rate, int | float))(
            params, augmented_and_preprocessed_input_batch["inputs"], rngs, train,
            dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Per-example sigmoid cross-entropy of the flattened logits and labels, masked;
        ``label_smoothing`` is ignored, as AlgoPerf's."""
        del label_smoothing
        logits = jnp.reshape(logits_batch, (-1,))
        per_example = per_example_sigmoid_cross_entropy(
            logits, jnp.reshape(label_batch, (-1,)))
        if mask_batch is None:
            n_valid = jnp.asarray(len(per_example), per_example.dtype)
        else:
            mask = jnp.reshape(mask_batch, (-1,))
            per_example = per_example * mask
            n_valid = jnp.sum(mask)
        return {"summed": jnp.sum(per_example), "n_valid_examples": n_valid,
                "per_example": per_example}

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch_loss_jitted(self, params: spec.ParameterContainer,
                                batch: dict[str, spec.Tensor]) -> spec.Tensor:
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        return self.loss_fn(batch["targets"], logits, batch["weights"])["summed"]

    def _eval_batch_loss(self, params: spec.ParameterContainer,
                         batch: dict[str, spec.Tensor]) -> np.float64:
        return np.float64(self._eval_batch_loss_jitted(params, batch))
