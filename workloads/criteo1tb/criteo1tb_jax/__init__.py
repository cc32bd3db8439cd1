"""The criteo1tb workload in JAX (flax linen)."""
