"""The fastmri workload in PyTorch."""
