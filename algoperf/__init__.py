"""algoperf: a reproducible, verifiable implementation of the AlgoPerf benchmark.

Submissions import the AlgoPerf API from here (``from algoperf import spec``); the
framework-specific helpers (``pytorch_utils``, ``jax_sharding_utils``) import their framework
only when they are imported themselves.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("algoperf")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.6.0"
