"""The tabular workload in JAX: flax MLP ``Dense_0 -> Dense_1 -> Dense_2``, inputs (B, 32)."""

from flax import linen as nn

from algoperf import spec
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.tabular.tabular_jax.models import TabularMLP
from algoperf.workloads.tabular.workload import BaseTabularWorkload


class TabularWorkload(BaseTabularWorkload, JaxImageClassificationWorkload):
    """tabular with a JAX model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return TabularMLP()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Dense_2"
