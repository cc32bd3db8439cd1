"""The ogbg workload in JAX (jraph)."""
