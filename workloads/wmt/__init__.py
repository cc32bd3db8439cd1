"""wmt: German-to-English translation (AlgoPerf's ``wmt`` and its variants)."""
