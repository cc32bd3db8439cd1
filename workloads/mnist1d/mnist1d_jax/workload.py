"""The mnist1d workload in JAX: flax CNN ``Conv_0 -> Conv_1 -> Conv_2 -> Dense_0``, inputs
(B, 40, 1)."""

from flax import linen as nn

from algoperf import spec
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.mnist1d.mnist1d_jax.models import Mnist1dCNN
from algoperf.workloads.mnist1d.workload import BaseMnist1dWorkload


class Mnist1dWorkload(BaseMnist1dWorkload, JaxImageClassificationWorkload):
    """MNIST-1D with a JAX model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return Mnist1dCNN()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Dense_0"
