"""MNIST: the four official IDX files -- their reader, their preparation, a synthetic writer.

The files are gzip-compressed IDX (``train-images-idx3-ubyte.gz``, ...), read here with numpy.
Preparing means proving the files are what the mnist workload reads (60,000 + 10,000 images
of 28x28, labels 0-9) and putting them in place as they are; because the prepared files are
the downloaded ones, the official prepared root is known in advance and stored in the
manifest. ``write_synthetic`` writes files in the same format with synthetic images, for
``algoperf workloads check`` and the tests.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
NUM_IMAGES = {"train": 60_000, "test": 10_000}
IMAGE_SIZE = 28
NUM_CLASSES = 10
_UNSIGNED_BYTE = 0x08  # IDX type code of the MNIST files


def mnist_dir(data_dir: str | None) -> Path:
    """Where the MNIST files live: ``<data_dir>/mnist``."""
    if data_dir is None:
        raise UserError("the mnist workload needs a data directory; pass the one that holds "
                        "mnist/ with the four official MNIST .gz files.")
    return Path(os.path.expanduser(data_dir)) / "mnist"


def check_files(directory: Path) -> None:
    """Raises UserError naming every missing MNIST file and how to get it."""
    names = [name for pair in FILES.values() for name in pair]
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise UserError(
            f"MNIST files missing in {directory}: {', '.join(missing)}; download the official "
            f"MNIST files with: algoperf datasets download mnist --data-dir {directory.parent}"
        )


def read_idx(path: Path) -> np.ndarray:
    """The unsigned-byte array stored in the gzip-compressed IDX file ``path``.

    IDX: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions ``n``,
    ``n`` big-endian uint32 sizes, then the data in C order. Anything else is a UserError.
    """
    def corrupt(reason: str) -> UserError:
        return UserError(f"{path} is corrupt ({reason}); replace it with the official MNIST "
                         "file of that name.")

    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise corrupt(f"not a readable gzip file: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UNSIGNED_BYTE:
        raise corrupt("no IDX header of unsigned bytes")
    ndim = raw[3]
    data_start = 4 + 4 * ndim
    if len(raw) < data_start:
        raise corrupt("IDX header cut short")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=data_start)
    if data.size != np.prod(shape, dtype=np.int64):
        raise corrupt(f"header says shape {shape} but it holds {data.size} values")
    return data.reshape(shape)


def read_mnist(directory: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,) of ``part`` ('train' or 'test')."""
    check_files(directory)
    images_name, labels_name = FILES[part]
    images = read_idx(directory / images_name)
    labels = read_idx(directory / labels_name)
    expected = (NUM_IMAGES[part], IMAGE_SIZE, IMAGE_SIZE)
    if images.shape != expected:
        raise UserError(f"{directory / images_name} holds images of shape {images.shape}, "
                        f"not {expected}; replace it with the official MNIST file.")
    if labels.shape != expected[:1] or labels.max() >= NUM_CLASSES:
        raise UserError(f"{directory / labels_name} does not hold {expected[0]} labels 0-9; "
                        "replace it with the official MNIST file.")
    return images, labels



def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Checks the four files in ``raw_dir`` parse as MNIST and copies them to ``out``."""
    counts = {}
    for part in ("train", "test"):
        images, _ = read_mnist(raw_dir, part)
        counts[part] = len(images)
    for entry in manifest.files:
        shutil.copyfile(raw_dir / entry.name, out / entry.name)
    return {"examples": counts}


def idx_gz(array: np.ndarray) -> bytes:
    """``array`` (uint8) as a gzip-compressed IDX file, the format of the MNIST distribution."""
    header = bytes([0, 0, _UNSIGNED_BYTE, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes(),
                         compresslevel=1)


def synthetic_images(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled 28x28 images: a bright band at a class-dependent height, and the image's index
    written into its last row so that every image is distinct."""
    labels = np.random.RandomState(seed).randint(0, NUM_CLASSES, num_images).astype(np.uint8)
    images = np.zeros((num_images, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for label in range(NUM_CLASSES):
        images[labels == label, 2 * label:2 * label + 3, 4:24] = 200
    index = np.arange(num_images)
    for byte in range(3):
        images[:, IMAGE_SIZE - 1, byte] = (index >> (8 * byte)) & 0xFF
    return images, labels


def synthetic_files(num_train: int = NUM_IMAGES["train"],
                    num_test: int = NUM_IMAGES["test"]) -> dict[str, bytes]:
    """The four MNIST files, named as the official ones, holding ``synthetic_images``."""
    files = {}
    for part, count, seed in (("train", num_train, 0), ("test", num_test, 1)):
        images, labels = synthetic_images(count, seed)
        images_name, labels_name = FILES[part]
        files[images_name] = idx_gz(images)
        files[labels_name] = idx_gz(labels)
    return files


def write_synthetic(data_dir: Path) -> Path:
    """Writes full-size synthetic MNIST into ``data_dir/mnist``, the prepared layout with its
    content manifest (whose source says it is synthetic), and returns that folder."""
    directory = Path(data_dir) / "mnist"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in synthetic_files().items():
        (directory / name).write_bytes(data)
    content.write(directory, content.scan(directory, "mnist", {"synthetic": True}))
    return directory
