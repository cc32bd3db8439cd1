"""The charlm workload in JAX."""
