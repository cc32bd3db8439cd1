"""The ogbg workload in PyTorch."""
