"""The CIFAR workload in PyTorch."""
