"""The MNIST workload in JAX."""
