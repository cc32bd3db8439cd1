"""The ImageNet ViT workload in PyTorch."""
