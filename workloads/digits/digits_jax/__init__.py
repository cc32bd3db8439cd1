"""The digits workload in JAX."""
