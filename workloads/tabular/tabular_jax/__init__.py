"""The tabular workload in JAX."""
