"""The mnist1d workload in JAX."""
