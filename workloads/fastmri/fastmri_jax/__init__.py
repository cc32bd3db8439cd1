"""The fastmri workload in JAX."""
