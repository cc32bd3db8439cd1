"""The LibriSpeech DeepSpeech in JAX (flax linen)."""
