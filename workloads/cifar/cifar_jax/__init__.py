"""The CIFAR workload in JAX."""
