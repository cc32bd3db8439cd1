"""finewebedu_lm in JAX (flax linen)."""
