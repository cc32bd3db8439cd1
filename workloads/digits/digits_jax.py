"""The digits workload in JAX: flax MLP ``Dense_0 -> Dense_1 -> Dense_2``, inputs (B, 8, 8, 1)."""

from algoperf.workloads.classification_jax import JaxImageClassificationWorkload
from algoperf.workloads.digits.workload import BaseDigitsWorkload


class DigitsWorkload(BaseDigitsWorkload, JaxImageClassificationWorkload):
    """Digits with a JAX model; everything framework-specific comes from the JAX base."""
