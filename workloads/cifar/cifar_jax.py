"""The CIFAR workload in JAX: ResNet-18 with a CIFAR stem (flax linen), with batch norm.

Parameter names follow AlgoPerf's flax model: ``Conv_init``, ``BatchNorm_init``,
``ResNetBlock_0..7`` (``Conv_0/1``, ``BatchNorm_0/1``, and ``Conv_proj``/``BatchNorm_proj`` where
a block changes shape), ``Dense_0``. 11,173,962 parameters plus 9,600 batch-norm statistics.
Batch norm: momentum 0.9, epsilon 1e-5; the second norm of each block starts with zero scale;
the classifier kernel starts as N(0, 0.01^2). The model state is ``{'batch_stats': ...}``.
Fixed AlgoPerf quirk: its JAX ``init_model_fn`` returns the parameters as the model state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf import jax_sharding_utils, param_utils, spec
from algoperf.workloads.cifar.workload import BaseCifarWorkload
from algoperf.workloads.classification_jax import JaxImageClassificationWorkload, as_jax_key


class ResNetBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (projected when the
    shape changes)."""

    filters: int
    strides: tuple[int, int]
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False)
        norm = functools.partial(nn.BatchNorm, use_running_average=not self.train,
                                 momentum=0.9, epsilon=1e-5)
        y = nn.relu(norm()(conv(self.filters, (3, 3), self.strides)(x)))
        y = norm(scale_init=nn.initializers.zeros)(conv(self.filters, (3, 3))(y))
        if x.shape != y.shape or self.strides != (1, 1):
            x = conv(self.filters, (1, 1), self.strides, name="Conv_proj")(x)
            x = norm(name="BatchNorm_proj")(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """3x3 stem with 64 filters, four stages of two blocks (64, 128, 256, 512 filters; the
    last three halve the resolution), global average pooling, a linear classifier."""

    num_classes: int = 10
    stage_sizes: Sequence[int] = (2, 2, 2, 2)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Conv(64, (3, 3), (1, 1), padding=[(1, 1), (1, 1)], use_bias=False,
                    name="Conv_init")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         name="BatchNorm_init")(x)
        x = nn.relu(x)
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
                x = ResNetBlock(64 * 2**stage, strides, train)(x)
        x = jnp.mean(x, axis=(1, 2))  # the 4x4 average pool of the 32x32 model
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01))(x)


class CifarWorkload(BaseCifarWorkload, JaxImageClassificationWorkload):
    """CIFAR-10 with a JAX ResNet-18; input handling, loss and eval come from the bases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model = ResNet18(num_classes=self.num_classes)

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
