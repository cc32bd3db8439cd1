"""The MNIST workload in JAX: flax MLP ``Dense_0 -> Dense_1`` (AlgoPerf's), inputs
(B, 28, 28, 1)."""

from flax import linen as nn

from algoperf import spec
from algoperf.workloads.common.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.mnist.mnist_jax.models import MnistMLP
from algoperf.workloads.mnist.workload import BaseMnistWorkload


class MnistWorkload(BaseMnistWorkload, JaxImageClassificationWorkload):
    """MNIST with a JAX model; everything else comes from the bases."""

    def _build_model(self) -> nn.Module:
        return MnistMLP()

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key == "Dense_1"
