"""MNIST: the four official IDX files, checked to parse as MNIST and kept as they are.

The mnist workload reads ``<data_dir>/mnist/*.gz`` itself, so preparing means proving the
files are what the workload expects (60,000 + 10,000 images of 28x28, labels 0-9) and putting
them in place. Because the prepared files are the downloaded ones, the official prepared root
is known in advance and stored in the manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from algoperf.datasets.manifest import Manifest
from algoperf.workloads.mnist import workload as mnist_workload


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Checks the four files in ``raw_dir`` parse as MNIST and copies them to ``out``."""
    counts = {}
    for part in ("train", "test"):
        images, _ = mnist_workload.read_mnist(raw_dir, part)
        counts[part] = len(images)
    for entry in manifest.files:
        shutil.copyfile(raw_dir / entry.name, out / entry.name)
    return {"examples": counts}
