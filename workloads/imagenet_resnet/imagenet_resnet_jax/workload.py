"""The ImageNet ResNet-50 workload in JAX: the flax model (``models``) with batch norm, on the
common classification base. The model state is ``{'batch_stats': ...}``; ``update_batch_norm``
and ``use_running_average_bn`` act as in AlgoPerf's JAX workload."""

from __future__ import annotations

import functools

import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.imagenet_resnet.imagenet_resnet_jax.models import ResNet50
from algoperf.workloads.imagenet_resnet.workload import BaseImagenetResNetWorkload


class ImagenetResNetWorkload(BaseImagenetResNetWorkload, JaxImageClassificationWorkload):
    """ImageNet with a JAX ResNet-50; the variants are its settings."""

    def _build_model(self) -> nn.Module:
        act = nn.silu if self.use_silu else nn.gelu if self.use_gelu else nn.relu
        return ResNet50(num_classes=self.num_classes, act=act, bn_init_scale=self.bn_init_scale)

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        dummy = jnp.ones((1, *self.input_shape), jnp.float32)
        # Op by op, not jitted as AlgoPerf does (same values): XLA takes ~20 s on a CPU to
        # compile ResNet-50's whole init program, while each op's kernel compiles once per
        # shape and serves every variant and later initialisation.
        variables = self._model.init({"params": as_jax_key(rng)}, dummy)
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
        model has no dropout, so ``mode`` (beyond that), ``rng`` and ``dropout_rate`` change
        nothing, as in AlgoPerf."""
        del mode, rng, dropout_rate
        variables = {"params": params, **model_state}
        apply = functools.partial(self._model.apply, variables,
                                  augmented_and_preprocessed_input_batch["inputs"],
                                  update_batch_norm=update_batch_norm,
                                  use_running_average_bn=use_running_average_bn)
        if update_batch_norm:
            return apply(mutable=["batch_stats"])
        return apply(mutable=False), model_state
