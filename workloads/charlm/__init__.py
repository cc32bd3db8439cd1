"""The charlm dev workload: a small byte-level Transformer language model on Python's docs."""
