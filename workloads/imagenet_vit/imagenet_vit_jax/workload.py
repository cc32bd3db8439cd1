"""The ImageNet ViT workload in JAX: the flax ViT-S/16 (``models``), with ResNet's ImageNet
data, loss and evaluation (``imagenet_resnet``'s JAX workload). The model has no state;
``dropout_rate`` (default 0.0) applies in TRAIN mode, with keys from the step's ``rng``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.imagenet_resnet.imagenet_resnet_jax.workload import (
    ImagenetResNetWorkload,
)
from algoperf.workloads.imagenet_vit.imagenet_vit_jax.models import ViT
from algoperf.workloads.imagenet_vit.workload import (
    DROPOUT_RATE,
    VIT_S16,
    BaseImagenetVitWorkload,
)


class ImagenetVitWorkload(BaseImagenetVitWorkload, ImagenetResNetWorkload):
    """ImageNet with a JAX ViT-S/16; the variants are its settings."""

    def _build_model(self) -> nn.Module:
        return ViT(num_classes=self.num_classes, use_glu=self.use_glu,
                   use_post_layer_norm=self.use_post_layer_norm, use_map=self.use_map,
                   **VIT_S16)

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        # AlgoPerf initialises from the first half of the key's split: same key, same weights.
        params_rng, _ = jax.random.split(as_jax_key(rng))
        dummy = jnp.ones((1, *self.input_shape), jnp.float32)
        # Op by op, as ResNet's (see imagenet_resnet_jax.workload): no whole-program compile.
        params = self._model.init({"params": params_rng}, dummy)["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return jax_sharding_utils.replicate(params), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "head"

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        use_running_average_bn: bool | None = None,
        dropout_rate: float | None = DROPOUT_RATE,
    ) -> tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        """Logits of the batch; dropout at ``dropout_rate`` in TRAIN mode. No batch norm:
        ``update_batch_norm`` and ``use_running_average_bn`` change nothing, and the state
        stays None."""
        del model_state, update_batch_norm, use_running_average_bn
        train = mode == spec.ForwardPassMode.TRAIN
        rate = DROPOUT_RATE if dropout_rate is None else dropout_rate
        rngs = {"dropout": as_jax_key(rng)} if rng is not None else {}
        logits = self._model.apply({"params": params},
                                   augmented_and_preprocessed_input_batch["inputs"],
                                   train=train, dropout_rate=rate, rngs=rngs)
        return logits, None
