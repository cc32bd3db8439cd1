"""The digits workload in PyTorch."""
