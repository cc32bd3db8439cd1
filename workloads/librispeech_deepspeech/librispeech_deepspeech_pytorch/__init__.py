"""The LibriSpeech DeepSpeech in PyTorch."""
