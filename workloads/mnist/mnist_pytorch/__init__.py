"""The MNIST workload in PyTorch."""
