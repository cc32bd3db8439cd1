"""The ImageNet ResNet-50 workload in PyTorch."""
