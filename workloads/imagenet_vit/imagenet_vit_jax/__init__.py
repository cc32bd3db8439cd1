"""The ImageNet ViT workload in JAX."""
