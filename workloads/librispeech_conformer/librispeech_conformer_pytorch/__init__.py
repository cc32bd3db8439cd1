"""The LibriSpeech Conformer in PyTorch."""
