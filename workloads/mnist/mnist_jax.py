"""The MNIST workload in JAX: flax MLP ``Dense_0 -> Dense_1`` (AlgoPerf's), inputs
(B, 28, 28, 1)."""

from algoperf.workloads.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.mnist.workload import BaseMnistWorkload


class MnistWorkload(BaseMnistWorkload, JaxImageClassificationWorkload):
    """MNIST with a JAX model; everything framework-specific comes from the JAX base."""
