"""The mnist1d workload in PyTorch."""
