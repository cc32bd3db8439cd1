"""The MNIST development workload, framework-free part: data, split and constants (AlgoPerf's).

Data: the four official MNIST distribution files, read from ``<data_dir>/mnist/`` (IDX format,
gzip-compressed, parsed here with numpy). Split as in AlgoPerf: 'train' is the first 50,000
training images, 'validation' the last 10,000, 'test' the 10,000 t10k images; 'eval_train' is
the first 10,000 training images. Model: an MLP 784 -> 128 (sigmoid) -> 10.

Normalisation: ``(x - 0.1307) / 0.3081`` with pixels ``x`` scaled to [0, 1], the range those
constants were measured in. Knowingly fixed AlgoPerf quirk: AlgoPerf applies them to the raw
0..255 values, which sends inputs up to ~827 and saturates the sigmoid layer.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from algoperf.errors import UserError
from algoperf.workloads.classification import ImageClassificationWorkload

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


class BaseMnistWorkload(ImageClassificationWorkload):
    """MNIST, framework-free: the JAX and PyTorch ``MnistWorkload`` classes build on it."""

    workload_name = "mnist"
    num_classes = NUM_CLASSES
    input_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
    hidden_sizes = (128,)
    activation = "sigmoid"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files: dict[tuple[Path, str], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def num_train_examples(self) -> int:
        return 50_000

    @property
    def num_validation_examples(self) -> int:
        return 10_000

    @property
    def num_test_examples(self) -> int:
        return 10_000

    @property
    def eval_batch_size(self) -> int:
        return 10_000

    @property
    def train_mean(self) -> float:
        return 0.1307

    @property
    def train_stddev(self) -> float:
        return 0.3081

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        key = (mnist_dir(data_dir), "test" if split == "test" else "train")
        if key not in self._files:  # 'train' and 'validation' share the training files
            self._files[key] = read_mnist(*key)
        images, labels = self._files[key]
        if split == "train":
            rows = slice(0, self.num_train_examples)
        elif split == "validation":
            rows = slice(self.num_train_examples, None)
        else:
            rows = slice(None)
        pixels = images[rows, :, :, None].astype(np.float32) / 255.0
        return {"inputs": (pixels - self.train_mean) / self.train_stddev,
                "targets": labels[rows].astype(np.int32)}
