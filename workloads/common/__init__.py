"""What every workload shares: the registry-backed base class, the numpy batching and padding
of the input pipelines, the in-memory classification bases, framework-specific helpers
(initialisers, keys) and the JAX-vs-PyTorch parity harness."""
