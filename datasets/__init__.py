"""Datasets: manifest-driven download, safe preparation and verification (``algoperf datasets``).

- ``manifest``: what each AlgoPerf dataset is (files, sha256, mirrors, license), as data
- ``fetch``: resumable, retried, hash-checked downloads over HTTP(S) and gs://
- ``extract``: archive extraction that refuses paths and links leaving the target
- ``content``: per-file sha256 and a root hash of every prepared dataset
- ``operations``: status, download, prepare, verify; ``command``: the CLI group
- one module per dataset (``mnist``, ``cifar10``) that turns raw files into the prepared layout

Importing this package is cheap (the runner reads recorded roots through it).
"""

from algoperf.datasets.content import recorded_root

__all__ = ["recorded_root"]
