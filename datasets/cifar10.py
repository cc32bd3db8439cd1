"""CIFAR-10: the python-version archive, unpacked into numpy arrays the cifar workload loads.

The archive holds ``cifar-10-batches-py/`` with five training batches, one test batch and
``batches.meta``, each a pickled dict (``b'data'``: uint8 (N, 3072) rows of R, G and B planes
of 32x32; ``b'labels'``: N class indices). Preparation extracts the archive safely, reads the
batches with an unpickler that can build nothing but numpy arrays (a pickle can otherwise run
arbitrary code), and writes:

- ``train_images.npy`` uint8 (50000, 32, 32, 3) in batch order 1..5, ``train_labels.npy`` uint8
- ``test_images.npy`` uint8 (10000, 32, 32, 3), ``test_labels.npy`` uint8
- ``meta.json``: the class names and the number of examples of each part.

Images are stored height x width x channels, the layout of the numpy input pipeline.
``write_synthetic`` writes that layout with synthetic images, for ``algoperf workloads check``
and the tests.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np

from algoperf.datasets import content, extract
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
FILES = {"train": ("train_images.npy", "train_labels.npy"),
         "test": ("test_images.npy", "test_labels.npy")}
META_FILE = "meta.json"

# What a CIFAR pickle may build: numpy arrays (and the bytes codec protocol 2 uses).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict:
    """One CIFAR pickle as a dict with bytes keys; UserError if it is not one."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(io.BufferedReader(f), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{path.name} in the CIFAR-10 archive is not a CIFAR batch ({e}); "
                        "the archive is not the official one") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path.name} in the CIFAR-10 archive holds a "
                        f"{type(batch).__name__}, not a batch dict")
    return batch


def _images_and_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_batch(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != np.prod(IMAGE_SHAPE):
        raise UserError(f"{path.name}: b'data' is not a uint8 (N, 3072) array")
    labels = np.asarray(labels)
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 \
            or labels.max(initial=0) >= NUM_CLASSES:
        raise UserError(f"{path.name}: b'labels' is not {len(data)} class indices 0-9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> HWC
    return images, labels.astype(np.uint8)


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Extracts ``raw_dir/<archive>`` into ``out/.extract`` and writes the arrays to ``out``."""
    (archive,) = manifest.files
    scratch = out / ".extract"
    try:
        extract.safe_extract(raw_dir / archive.name, scratch)
        folder = scratch / FOLDER
        missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH, META)
                   if not (folder / name).is_file()]
        if missing:
            raise UserError(f"the CIFAR-10 archive lacks {FOLDER}/{', '.join(missing)}; it is "
                            "not the python version of CIFAR-10")
        meta = read_batch(folder / META)
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in meta.get(b"label_names", [])]
        if len(names) != NUM_CLASSES:
            raise UserError(f"{META} in the CIFAR-10 archive does not name 10 classes")
        parts = {"train": [_images_and_labels(folder / n) for n in TRAIN_BATCHES],
                 "test": [_images_and_labels(folder / TEST_BATCH)]}
        counts = {}
        for part, batches in parts.items():
            images_name, labels_name = FILES[part]
            _save(out / images_name, np.concatenate([images for images, _ in batches]))
            _save(out / labels_name, np.concatenate([labels for _, labels in batches]))
            counts[part] = sum(len(labels) for _, labels in batches)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (out / META_FILE).write_text(json.dumps({"label_names": names, "examples": counts},
                                            indent=1) + "\n")
    return {"examples": counts}


def load(directory: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 32, 32, 3) and labels uint8 (N,) of ``part`` ('train' or 'test')."""
    images_name, labels_name = FILES[part]
    try:
        images = np.load(directory / images_name, allow_pickle=False)
        labels = np.load(directory / labels_name, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read prepared CIFAR-10 in {directory} ({e}); prepare it "
                        "again with: algoperf datasets prepare cifar10 --force") from None
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE or len(labels) != len(images):
        raise UserError(f"prepared CIFAR-10 in {directory} has unexpected arrays; prepare it "
                        "again with: algoperf datasets prepare cifar10 --force")
    return images, labels


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 (N, 32, 32, 3) images and labels: a class-coloured square on a dark
    background, the image's index in the first pixels so that every image is distinct."""
    random = np.random.RandomState(seed)
    labels = random.randint(0, NUM_CLASSES, count).astype(np.uint8)
    images = np.zeros((count, *IMAGE_SHAPE), np.uint8)
    for label in range(NUM_CLASSES):
        images[labels == label, 8:24, 8:24, label % 3] = 60 + 19 * label
    index = np.arange(count)
    for byte in range(3):
        images[:, 0, byte, 0] = (index >> (8 * byte)) & 0xFF
    return images, labels


def write_synthetic(data_dir: Path, num_train: int = 2_000, num_test: int = 500) -> Path:
    """Writes synthetic CIFAR-10 into ``data_dir/cifar10`` in the prepared layout, with its
    meta file and content manifest (whose source says it is synthetic); returns the folder."""
    directory = Path(data_dir) / "cifar10"
    directory.mkdir(parents=True, exist_ok=True)
    counts = {"train": num_train, "test": num_test}
    for seed, (part, count) in enumerate(counts.items()):
        images, labels = synthetic_images(count, seed)
        images_name, labels_name = FILES[part]
        _save(directory / images_name, images)
        _save(directory / labels_name, labels)
    names = [f"class_{i}" for i in range(NUM_CLASSES)]
    (directory / META_FILE).write_text(json.dumps({"label_names": names, "examples": counts},
                                                  indent=1) + "\n")
    content.write(directory, content.scan(directory, "cifar10", {"synthetic": True}))
    return directory
