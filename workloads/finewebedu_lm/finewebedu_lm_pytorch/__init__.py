"""finewebedu_lm in PyTorch."""
