"""The tabular workload in PyTorch."""
