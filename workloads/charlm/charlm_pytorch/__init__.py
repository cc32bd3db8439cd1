"""The charlm workload in PyTorch."""
