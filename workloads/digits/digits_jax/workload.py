"""The digits workload in JAX: flax MLP ``Dense_0 -> Dense_1 -> Dense_2``, inputs (B, 8, 8, 1)."""

from flax import linen as nn

from algoperf import spec
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.digits.digits_jax.models import DigitsMLP
from algoperf.workloads.digits.workload import BaseDigitsWorkload


class DigitsWorkload(BaseDigitsWorkload, JaxImageClassificationWorkload):
    """Digits with a JAX model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return DigitsMLP(activation=self.activation)

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Dense_2"
