"""wmt in PyTorch."""
