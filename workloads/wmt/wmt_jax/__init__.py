"""wmt in JAX (flax linen)."""
