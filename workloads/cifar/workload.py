"""The CIFAR-10 development workload, framework-free part: data, split, augmentation, constants.

AlgoPerf's ``cifar``: ResNet-18 with a 3x3 stem on CIFAR-10; target 0.85 validation and test
accuracy, budget 3,600 s, eval every 600 s, eval batch 1,024 (all in the registry row
``cifar``). Data: the arrays ``algoperf datasets download cifar10`` prepares in
``<data_dir>/cifar10/`` (``algoperf.datasets.cifar10``). Split as in AlgoPerf: 'train' is the
first 45,000 training images, 'validation' the last 5,000, 'test' the 10,000 test images;
'eval_train' is a prefix of 'train' as long as the validation split rounded up to whole eval
batches (5,120).

Inputs: pixels scaled to [0, 1] and standardised per channel with AlgoPerf's CIFAR mean and
standard deviation. Training batches are augmented like torchvision's ``RandomCrop(32,
padding=4)`` plus ``RandomHorizontalFlip``: zero-pad 4 pixels on every side, crop a random
32x32 window, flip half the images left-right -- in numpy, drawn from a stream seeded by the
data rng, so one seed augments alike in both frameworks. Knowingly fixed AlgoPerf quirk: its
JAX pipeline pads by 4 in total (2 a side), unlike its PyTorch one.

Split sizes follow the prepared data: the official archive gives the numbers above; a smaller
prepared set (only possible from a non-official dataset manifest, as the tests' fixture, whose
root then differs from the official one in every run log) keeps the rules -- validation is the
last tenth of the training images.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.datasets import cifar10 as cifar10_data
from algoperf.datasets import content
from algoperf.errors import UserError
from algoperf.workloads import pipeline
from algoperf.workloads.classification import ImageClassificationWorkload

OFFICIAL_COUNTS = {"train": 50_000, "test": 10_000}
VALIDATION_FRACTION = 10  # the last 1/10 of the training images: 5,000 of 50,000
PADDING = 4
CROP = 32
AUGMENT_STREAM = 1  # the augmentation rng is SeedSequence([seed, AUGMENT_STREAM])


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


class BaseCifarWorkload(ImageClassificationWorkload):
    """CIFAR-10, framework-free: the JAX and PyTorch ``CifarWorkload`` classes build on it."""

    workload_name = "cifar"
    num_classes = cifar10_data.NUM_CLASSES
    input_shape = cifar10_data.IMAGE_SHAPE
    # The shared base's MLP description; the framework classes replace the MLP by ResNet-18.
    hidden_sizes = ()
    activation = "relu"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # Sizes.

    def _count(self, part: str) -> int:
        if part in self._parts:
            return len(self._parts[part][1])
        return OFFICIAL_COUNTS[part]

    @property
    def num_validation_examples(self) -> int:
        return self._count("train") // VALIDATION_FRACTION

    @property
    def num_train_examples(self) -> int:
        return self._count("train") - self.num_validation_examples

    @property
    def num_test_examples(self) -> int:
        return self._count("test")

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 1024

    @property
    def train_mean(self) -> tuple[float, float, float]:
        return (0.49139968, 0.48215827, 0.44653124)

    @property
    def train_stddev(self) -> tuple[float, float, float]:
        return (0.24703233, 0.24348505, 0.26158768)

    # Data.

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        """uint8 images (N, 32, 32, 3) and int32 labels; normalised later, per batch."""
        if not self._parts:  # both parts at once: the split sizes depend on both
            directory = cifar_dir(data_dir)
            self._parts = {part: cifar10_data.load(directory, part) for part in OFFICIAL_COUNTS}
        images, labels = self._parts["test" if split == "test" else "train"]
        if split == "train":
            rows = slice(0, self.num_train_examples)
        elif split == "validation":
            rows = slice(self.num_train_examples, None)
        else:
            rows = slice(None)
        return {"inputs": images[rows], "targets": labels[rows].astype(np.int32)}

    def _normalise(self, batch: pipeline.Batch) -> pipeline.Batch:
        mean = np.asarray(self.train_mean, np.float32)
        std = np.asarray(self.train_stddev, np.float32)
        pixels = batch["inputs"].astype(np.float32) / 255.0
        return {**batch, "inputs": (pixels - mean) / std}

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ):
        """Shuffled, augmented endless batches for 'train'; ordered, padded batches for the
        eval splits (repeated unless ``repeat_final_dataset`` is False); then normalised."""
        del cache  # the arrays always stay in memory
        arrays = self._split_arrays(split, data_dir)
        if split == "train":
            seed = pipeline.seed_from_rng(data_rng)
            batches = pipeline.train_batches(arrays, global_batch_size, seed)
            rng = np.random.default_rng([seed, AUGMENT_STREAM])
            batches = ({**b, "inputs": augment(b["inputs"], rng)} for b in batches)
        else:
            repeat = repeat_final_dataset is None or repeat_final_dataset
            batches = pipeline.eval_batches(arrays, global_batch_size, repeat=repeat)
        batches = map(self._normalise, batches)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)
