"""The criteo1tb workload in PyTorch."""
