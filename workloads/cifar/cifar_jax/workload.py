"""The CIFAR workload in JAX: ResNet-18 (``models``) with batch norm, on the common
classification base. The model state is ``{'batch_stats': ...}``.

Fixed AlgoPerf quirk: its JAX ``init_model_fn`` returns the parameters as the model state.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.cifar.cifar_jax.models import ResNet18
from algoperf.workloads.cifar.workload import BaseCifarWorkload
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key


class CifarWorkload(BaseCifarWorkload, JaxImageClassificationWorkload):
    """CIFAR-10 with a JAX ResNet-18; input handling, loss and eval come from the bases."""

    def _build_model(self) -> nn.Module:
        return ResNet18(num_classes=self.num_classes)

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy = jnp.ones((1, *self.input_shape), jnp.float32)
        variables = jax.jit(functools.partial(self._model.init, train=False))(
            as_jax_key(rng), dummy)
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
        dropout_rate: float | None = None,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits and the model state. With ``update_batch_norm`` the batch's statistics
        normalise it and update the running averages (returned as the new state); otherwise
        the running averages normalise it, unless ``use_running_average_bn`` is False. The
        model has no dropout, so ``rng`` and ``dropout_rate`` change nothing."""
        del mode, rng, dropout_rate
        if use_running_average_bn is None:
            use_running_average_bn = not update_batch_norm
        variables = {"params": params, **model_state}
        inputs = augmented_and_preprocessed_input_batch["inputs"]
        if update_batch_norm:
            logits, new_state = self._model.apply(
                variables, inputs, train=not use_running_average_bn, mutable=["batch_stats"])
            return logits, new_state
        logits = self._model.apply(variables, inputs, train=not use_running_average_bn,
                                   mutable=False)
        return logits, model_state
