"""CIFAR-10's data: the prepared arrays, split, augmented and normalised in numpy.

Split as in AlgoPerf: 'train' is the first nine tenths of the training images (45,000 of the
official 50,000), 'validation' the last tenth, 'test' the 10,000 test images. Training
batches are augmented like torchvision's ``RandomCrop(32, padding=4)`` plus
``RandomHorizontalFlip``: zero-pad 4 pixels on every side, crop a random 32x32 window, flip
half the images left-right -- drawn from a stream seeded by the data rng, so one seed augments
alike in both frameworks. Knowingly fixed AlgoPerf quirk: its JAX pipeline pads by 4 in total
(2 a side), unlike its PyTorch one. Pixels are scaled to [0, 1] and standardised per channel.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from algoperf.datasets import cifar10 as cifar10_data
from algoperf.datasets import content
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline

OFFICIAL_COUNTS = {"train": 50_000, "test": 10_000}
VALIDATION_FRACTION = 10  # the last 1/10 of the training images: 5,000 of 50,000
PADDING = 4
CROP = 32
AUGMENT_STREAM = 1  # the augmentation rng is SeedSequence([seed, AUGMENT_STREAM])
MEAN = (0.49139968, 0.48215827, 0.44653124)
STDDEV = (0.24703233, 0.24348505, 0.26158768)


def cifar_dir(data_dir: str | None) -> Path:
    """Where the prepared arrays live: ``<data_dir>/cifar10``; UserError if not prepared."""
    if data_dir is None:
        raise UserError("the cifar workload needs a data directory; prepare CIFAR-10 with: "
                        "algoperf datasets download cifar10 --data-dir DIR")
    root = Path(os.path.expanduser(data_dir))
    directory = root / "cifar10"
    if not (directory / content.MANIFEST_NAME).is_file():
        raise UserError(f"CIFAR-10 is not prepared in {root}; run: algoperf datasets download "
                        f"cifar10 --data-dir {root}")
    return directory


def load_parts(data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images (N, 32, 32, 3) and labels of the prepared 'train' and 'test' parts."""
    directory = cifar_dir(data_dir)
    return {part: cifar10_data.load(directory, part) for part in OFFICIAL_COUNTS}


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 32x32 crops of the zero-padded uint8 images (N, 32, 32, C), half flipped."""
    n = len(images)
    padded = np.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    top = rng.integers(0, 2 * PADDING + 1, n)
    left = rng.integers(0, 2 * PADDING + 1, n)
    flip = rng.random(n) < 0.5
    rows = top[:, None] + np.arange(CROP)
    cols = left[:, None] + np.arange(CROP)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def normalise(batch: pipeline.Batch) -> pipeline.Batch:
    """The batch with uint8 pixels scaled to [0, 1] and standardised per channel."""
    pixels = batch["inputs"].astype(np.float32) / 255.0
    inputs = (pixels - np.asarray(MEAN, np.float32)) / np.asarray(STDDEV, np.float32)
    return {**batch, "inputs": inputs}


def batches(arrays: dict[str, np.ndarray], split: str, batch_size: int, seed: int | None,
            repeat: bool = True, num_batches: int | None = None) -> Iterator[pipeline.Batch]:
    """Shuffled, augmented endless batches for 'train' (seeded); ordered, padded batches for
    the eval splits (repeated unless ``repeat`` is False); all normalised."""
    if split == "train":
        stream = pipeline.train_batches(arrays, batch_size, seed)
        rng = np.random.default_rng([seed, AUGMENT_STREAM])
        stream = ({**b, "inputs": augment(b["inputs"], rng)} for b in stream)
    else:
        stream = pipeline.eval_batches(arrays, batch_size, repeat=repeat)
    stream = map(normalise, stream)
    if num_batches is not None:
        stream = itertools.islice(stream, num_batches)
    return stream
