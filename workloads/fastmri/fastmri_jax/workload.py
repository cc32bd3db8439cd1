"""The fastmri workload in JAX: the U-Net (``models``), the per-example L1 loss and a jitted
eval step with AlgoPerf's SSIM (``ssim``). Stateless: the model state is None."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.jax_rng import as_jax_key
from algoperf.workloads.common.jitted_apply_jax import jitted_apply
from algoperf.workloads.fastmri.fastmri_jax.models import UNet
from algoperf.workloads.fastmri.fastmri_jax.ssim import ssim
from algoperf.workloads.fastmri.workload import DROPOUT_RATE, BaseFastMRIWorkload

INIT_SHAPE = (1, 32, 32)  # the parameters do not depend on the image size


@functools.cache
def _jitted_init(model: UNet):
    """The model's jitted ``init``, one per configuration and process: compiling it takes
    XLA:CPU tens of seconds (the threefry draws of 7.7 million parameters)."""
    return jax.jit(functools.partial(model.init, train=False))


class FastMRIWorkload(BaseFastMRIWorkload):
    """fastMRI with a flax U-Net."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model = UNet(num_channels=self.num_channels, num_pool_layers=self.num_pool_layers,
                           use_tanh=self.use_tanh, use_layer_norm=self.use_layer_norm)

    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        return jax.device_put(batch, jax_sharding_utils.get_batch_dim_sharding())

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        params_rng, _ = jax.random.split(as_jax_key(rng))
        params = _jitted_init(self._model)({"params": params_rng},
                                           jnp.zeros(INIT_SHAPE))["params"]
        self._param_shapes = param_utils.jax_param_shapes(params)
        self._param_types = param_utils.jax_param_types(self._param_shapes)
        return jax_sharding_utils.replicate(params), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Conv_0"

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
        """Reconstructions (N, H, W). TRAIN applies channel dropout at ``dropout_rate`` (0 by
        default) with ``rng``; no batch norm."""
        del model_state, update_batch_norm
        train = mode == spec.ForwardPassMode.TRAIN
        rngs = {"dropout": as_jax_key(rng)} if train and rng is not None else {}
        apply = jitted_apply(self._model, isinstance(dropout_rate, int | float))
        outputs = apply(params, augmented_and_preprocessed_input_batch["inputs"], rngs, train,
                       dropout_rate)
        return outputs, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: spec.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, spec.Tensor]:
        """Per-example mean absolute error over the pixels, masked; ``label_smoothing`` does
        not apply to a regression and is ignored (as AlgoPerf)."""
        del label_smoothing
        per_example = jnp.mean(jnp.abs(logits_batch - label_batch),
                               axis=tuple(range(1, logits_batch.ndim)))
        if mask_batch is None:
            n_valid = jnp.asarray(per_example.shape[0], per_example.dtype)
        else:
            per_example = per_example * mask_batch
            n_valid = jnp.sum(mask_batch)
        return {"summed": jnp.sum(per_example), "n_valid_examples": n_valid,
                "per_example": per_example}

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch_metrics(self, params: spec.ParameterContainer,
                            batch: dict[str, spec.Tensor]) -> dict[str, spec.Tensor]:
        outputs, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        weights = batch["weights"]
        values = ssim(outputs, batch["targets"], batch["mean"], batch["std"],
                      batch["volume_max"])
        return {"ssim": jnp.sum(values * weights),
                "loss": self.loss_fn(batch["targets"], outputs, weights)["summed"]}
