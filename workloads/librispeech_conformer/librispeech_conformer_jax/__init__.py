"""The LibriSpeech Conformer in JAX (flax linen)."""
