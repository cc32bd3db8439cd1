"""ImageNet's input pipeline: JPEG shards decoded and augmented in worker processes, in numpy.

Reads the layout ``algoperf.datasets.imagenet`` prepares and yields numpy batches
``{'inputs': float32 (N, S, S, 3) normalised, 'targets': int32 (N,) -- float32 (N, 1000) soft
labels with mixup --, 'weights': float32 (N,)}``; the JAX and PyTorch workloads only convert
them (NHWC, NCHW). No TensorFlow and no torchvision: Pillow (libjpeg-turbo) decodes, Pillow
and numpy augment.

- ``train``: an endless stream of per-epoch permutations (the rows left after the last full
  batch of an epoch are dropped); each image gets torchvision's ``RandomResizedCrop`` (area
  0.08-1, aspect 3/4-4/3, ten tries then the centre crop; bilinear) to S and a flip with
  probability 0.5; for ViT then RandAugment (2 layers, magnitude 10, AlgoPerf's PyTorch op
  table) and, per batch, mixup (alpha 0.2, the batch mixed with itself rolled by one).
- ``eval_train``, ``validation``, ``test``: resize the shorter side to R (256), centre crop
  S (224), in order, the last batch padded with weight-0 rows; ``eval_train`` is a seeded
  subset of the training images (AlgoPerf: 50,176 for ResNet, 51,200 for ViT).

Deterministic: batch ``b`` depends only on the seed and ``b`` -- epoch ``e`` is the
permutation of ``default_rng([seed, SHUFFLE, e])``, image ``i`` of the stream augments with
``default_rng([seed, AUGMENT, i])``, batch ``b``'s mixup weight comes from
``default_rng([seed, MIXUP, b])`` -- so the number of workers never changes a batch, and a
stream restarts anywhere: ``batches(..., start=b)`` continues after ``b`` batches, and a
stream's ``position`` is the number of batches it has yielded (what a checkpoint stores).

Workers (one pool per process, one worker per core by default, started with ``forkserver`` so
that a parent running JAX threads is never forked, shared by every stream) decode chunks of a
batch as uint8 into shared-memory slots, two batches ahead; the main process normalises a
finished slot into float32 (a quarter of the shared memory float32 slots would need: a 2 GB
``/dev/shm`` holds the training stream and a ViT eval stream) and hands the slot back.
"""

from __future__ import annotations

import dataclasses
import io
import math
import multiprocessing
import multiprocessing.pool
import os
import weakref
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from algoperf.datasets import imagenet
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline

SHUFFLE, AUGMENT, MIXUP, EVAL_TRAIN = 1, 2, 3, 4  # rng streams: default_rng([seed, stream, i])
IMAGE_SIZE = 224
RESIZE_SIZE = 256
MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV = (0.229 * 255, 0.224 * 255, 0.225 * 255)
SCALE_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
MIXUP_ALPHA = 0.2
RANDAUG_LAYERS = 2
RANDAUG_MAGNITUDE = 10
FILL = (128, 128, 128)  # RandAugment's fill colour
SMALL_SPLIT = 1024  # splits with fewer images are decoded in the main process by default
PREFETCH = 2  # batches decoded ahead


@dataclasses.dataclass(frozen=True)
class Transform:
    """What is done to one image: the training augmentation or the eval resize and crop."""

    train: bool
    image_size: int = IMAGE_SIZE
    resize_size: int = RESIZE_SIZE
    scale_range: tuple[float, float] = SCALE_RANGE
    aspect_range: tuple[float, float] = ASPECT_RANGE
    use_randaug: bool = False
    randaug_layers: int = RANDAUG_LAYERS
    randaug_magnitude: int = RANDAUG_MAGNITUDE


# One image.

def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale_range: tuple[float, float] = SCALE_RANGE,
                            aspect_range: tuple[float, float] = ASPECT_RANGE
                            ) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height): torchvision's ``RandomResizedCrop.get_params``
    with a numpy generator -- ten tries at an area fraction and a log-uniform aspect ratio that
    fit the image, else the largest centre crop within the aspect range."""
    area = width * height
    log_ratio = (math.log(aspect_range[0]), math.log(aspect_range[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale_range)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(aspect_range):
        w, h = width, int(round(width / min(aspect_range)))
    elif in_ratio > max(aspect_range):
        w, h = int(round(height * max(aspect_range))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def decode(data: bytes) -> Image.Image:
    """The image as RGB (ImageNet has a few CMYK and greyscale JPEGs and one PNG)."""
    image = Image.open(io.BytesIO(data))
    return image if image.mode == "RGB" else image.convert("RGB")


def train_image(data: bytes, rng: np.random.Generator, transform: Transform) -> Image.Image:
    """Random-resized crop to ``image_size`` (bilinear), flip, and RandAugment if asked."""
    image = decode(data)
    left, top, w, h = random_resized_crop_box(*image.size, rng, transform.scale_range,
                                              transform.aspect_range)
    size = (transform.image_size, transform.image_size)
    # Crop, then resize, as torchvision: resizing a box of the whole image would also filter
    # pixels just outside the box into the border.
    image = image.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if transform.use_randaug:
        image = rand_augment(image, rng, transform.randaug_layers, transform.randaug_magnitude)
    return image


def eval_image(data: bytes, transform: Transform) -> Image.Image:
    """torchvision's ``Resize(resize_size)`` (shorter side, bilinear) and
    ``CenterCrop(image_size)``."""
    image = decode(data)
    width, height = image.size
    short, long = sorted((width, height))
    new_long = int(transform.resize_size * long / short)
    size = ((transform.resize_size, new_long) if width <= height
            else (new_long, transform.resize_size))
    image = image.resize(size, Image.Resampling.BILINEAR)
    crop = transform.image_size
    top = int(round((size[1] - crop) / 2.0))
    left = int(round((size[0] - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


# RandAugment, as AlgoPerf's PyTorch pipeline applies it (Pillow ops, nearest, fill 128).

def _affine(image: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, matrix,
                           Image.Resampling.NEAREST, fillcolor=FILL)


def _solarize_add(image: Image.Image, addition: int, threshold: int = 128) -> Image.Image:
    pixels = np.asarray(image)
    added = np.clip(pixels.astype(np.int16) + addition, 0, 255).astype(np.uint8)
    return Image.fromarray(np.where(pixels < threshold, added, pixels))


def _cutout(image: Image.Image, pad: int, rng: np.random.Generator) -> Image.Image:
    """A grey square of side ``2 * pad`` (+1: Pillow's rectangle includes both corners) centred
    at a uniform point, clipped at the borders, as AlgoPerf's ``cutout``."""
    width, height = image.size
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
    x1, y1 = int(min(width, x0 + 2 * pad)), int(min(height, y0 + 2 * pad))
    image = image.copy()
    ImageDraw.Draw(image).rectangle((x0, y0, x1, y1), FILL)
    return image


# name: (magnitude at level 10, signed); AlgoPerf's op table, in its order.
RANDAUG_OPS = {
    "ShearX": (0.3, True), "ShearY": (0.3, True), "TranslateX": (100, True),
    "TranslateY": (100, True), "Rotate": (30, True), "Brightness": (1.9, False),
    "Color": (1.9, False), "Contrast": (1.9, False), "Sharpness": (1.9, False),
    "Posterize": (4, False), "Solarize": (256, False), "SolarizeAdd": (110, False),
    "AutoContrast": (0, False), "Equalize": (0, False), "Invert": (0, False),
    "Cutout": (40, False),
}


def _magnitude(name: str, level: int) -> float:
    """The op's magnitude at ``level`` of 10: linear in the level, as in AlgoPerf's JAX
    RandAugment (the enhance factors run from 0.1 to 1.9); AlgoPerf uses level 10."""
    top, _ = RANDAUG_OPS[name]
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return level / 10 * 1.8 + 0.1
    return top * level / 10


def apply_op(image: Image.Image, name: str, magnitude: float,
             rng: np.random.Generator) -> Image.Image:
    """One RandAugment op; affine ops follow torchvision's inverse matrices for Pillow."""
    if name == "ShearX":
        return _affine(image, (1, magnitude, 0, 0, 1, 0))
    if name == "ShearY":
        return _affine(image, (1, 0, 0, magnitude, 1, 0))
    if name == "TranslateX":
        return _affine(image, (1, 0, -int(magnitude), 0, 1, 0))
    if name == "TranslateY":
        return _affine(image, (1, 0, 0, 0, 1, -int(magnitude)))
    if name == "Rotate":
        return image.rotate(magnitude, Image.Resampling.NEAREST, fillcolor=FILL)
    if name == "Brightness":
        return ImageEnhance.Brightness(image).enhance(magnitude)
    if name == "Color":
        return ImageEnhance.Color(image).enhance(magnitude)
    if name == "Contrast":
        return ImageEnhance.Contrast(image).enhance(magnitude)
    if name == "Sharpness":
        return ImageEnhance.Sharpness(image).enhance(magnitude)
    if name == "Posterize":
        return ImageOps.posterize(image, int(magnitude))
    if name == "Solarize":  # threshold 256 at level 10: no pixel changes (as in AlgoPerf)
        return ImageOps.solarize(image, int(magnitude))
    if name == "SolarizeAdd":
        return _solarize_add(image, int(magnitude))
    if name == "AutoContrast":
        return ImageOps.autocontrast(image)
    if name == "Equalize":
        return ImageOps.equalize(image)
    if name == "Invert":
        return ImageOps.invert(image)
    if name == "Cutout":
        return _cutout(image, int(magnitude), rng)
    raise ValueError(f"unknown RandAugment op {name!r}")


def rand_augment(image: Image.Image, rng: np.random.Generator, layers: int = RANDAUG_LAYERS,
                 level: int = RANDAUG_MAGNITUDE) -> Image.Image:
    """``layers`` ops, each drawn uniformly from the 16 and always applied; a signed op's
    magnitude is negated with probability 0.5."""
    names = list(RANDAUG_OPS)
    for _ in range(layers):
        name = names[int(rng.integers(len(names)))]
        magnitude = _magnitude(name, level)
        if RANDAUG_OPS[name][1] and rng.random() < 0.5:
            magnitude = -magnitude
        image = apply_op(image, name, magnitude, rng)
    return image


def mixup(inputs: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
          alpha: float = MIXUP_ALPHA, num_classes: int = imagenet.NUM_CLASSES
          ) -> tuple[np.ndarray, np.ndarray]:
    """Mixup with the batch rolled by one: weight ~ Beta(alpha, alpha), soft one-hot targets."""
    weight = np.float32(rng.beta(alpha, alpha))
    one_hot = np.eye(num_classes, dtype=np.float32)[targets]
    mixed = weight * inputs + (1 - weight) * np.roll(inputs, 1, axis=0)
    return mixed.astype(np.float32), weight * one_hot + (1 - weight) * np.roll(one_hot, 1, 0)


# Decoding a chunk of a batch (in a worker or in the main process).

@dataclasses.dataclass(frozen=True)
class _Decoder:
    """Decodes and transforms images into uint8 (S, S, 3) arrays; small, sent with each task."""

    transform: Transform
    seed: int

    def decode_into(self, out: np.ndarray, split: imagenet.Split, entries: np.ndarray,
                    example_ids: np.ndarray) -> None:
        for k, (entry, example) in enumerate(zip(entries, example_ids, strict=True)):
            data = split.read_entry(entry)
            if self.transform.train:
                rng = np.random.default_rng([self.seed, AUGMENT, int(example)])
                image = train_image(data, rng, self.transform)
            else:
                image = eval_image(data, self.transform)
            out[k] = np.asarray(image)


class _Normaliser:
    """(pixels - mean) / stddev into float32, with the per-channel constants tiled along an
    image row: numpy broadcasting a (3,) operand runs an inner loop of 3, five times slower."""

    def __init__(self, mean: tuple[float, ...], stddev: tuple[float, ...], size: int) -> None:
        self._mean = np.tile(np.asarray(mean, np.float32), size)
        self._inv_std = np.tile(1 / np.asarray(stddev, np.float32), size)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = np.empty(pixels.shape, np.float32)
        rows = out.reshape(-1, len(self._mean))
        np.subtract(pixels.reshape(rows.shape), self._mean, out=rows, dtype=np.float32)
        rows *= self._inv_std
        return out


_splits: dict[Path, imagenet.Split] = {}  # in a worker: the shards it has opened, by split


def _decode_task(slot: str, shape: tuple[int, ...], offset: int, directory: Path,
                 entries: np.ndarray, example_ids: np.ndarray, decoder: _Decoder) -> None:
    """In a worker: decodes ``entries`` into rows ``offset...`` of shared-memory ``slot``.
    The slot is attached for this task only, so that a slot the stream frees is gone."""
    split = _splits.get(directory)
    if split is None:
        split = _splits[directory] = imagenet.Split(directory, np.zeros(0, imagenet.INDEX_DTYPE))
    memory = shared_memory.SharedMemory(slot)
    try:
        out = np.ndarray(shape, np.uint8, memory.buf)[offset:offset + len(entries)]
        decoder.decode_into(out, split, entries, example_ids)
        del out
    finally:
        memory.close()


_pools: dict[int, multiprocessing.pool.Pool] = {}


def _shared_pool(workers: int) -> multiprocessing.pool.Pool:
    """One pool of ``workers`` decoding processes per process, shared by every stream; started
    with forkserver, so that a parent running JAX threads is never forked."""
    if workers not in _pools:
        _pools[workers] = multiprocessing.get_context("forkserver").Pool(workers)
    return _pools[workers]


def _free(slots: list[shared_memory.SharedMemory]) -> None:
    while slots:
        slot = slots.pop()
        slot.close()
        slot.unlink()


# Which rows make batch b.

class _Plan:
    """The rows (and stream example numbers) of every batch of one split."""

    def __init__(self, num_rows: int, batch_size: int, train: bool, seed: int,
                 order: np.ndarray | None, repeat: bool) -> None:
        self.num_rows, self.batch_size, self.train, self.seed = num_rows, batch_size, train, seed
        self.order = order if order is not None else np.arange(num_rows)
        self.per_pass = (num_rows // batch_size if train
                         else math.ceil(len(self.order) / batch_size))
        self.repeat = repeat or train
        self._epoch: tuple[int, np.ndarray] | None = None

    @property
    def num_batches(self) -> float:
        """Batches in the stream: one pass of an eval split unless repeated, else endless."""
        return math.inf if self.repeat else self.per_pass

    def rows(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, example numbers) of batch ``b``; eval batches may be short (padded later)."""
        epoch, k = divmod(b, self.per_pass)
        start = k * self.batch_size
        if self.train:
            if self._epoch is None or self._epoch[0] != epoch:
                rng = np.random.default_rng([self.seed, SHUFFLE, epoch])
                self._epoch = (epoch, rng.permutation(self.num_rows))
            rows = self._epoch[1][start:start + self.batch_size]
        else:
            rows = self.order[start:start + self.batch_size]
        return rows, b * self.batch_size + np.arange(len(rows))


class Batches(Iterator[pipeline.Batch]):
    """The stream of batches of one split; ``position`` batches were yielded so far.

    With workers, the next ``prefetch`` batches decode into uint8 shared-memory slots while
    one is consumed. An eval stream frees its slots after each pass over its split and takes
    new ones when the next pass starts, so idle eval streams hold no shared memory.
    """

    def __init__(self, split: imagenet.Split, plan: _Plan, decoder: _Decoder,
                 normalise: _Normaliser, mixup_alpha: float | None, workers: int,
                 start: int = 0, num_batches: int | None = None,
                 prefetch: int = PREFETCH) -> None:
        self._split, self._plan, self._decoder = split, plan, decoder
        self._normalise, self._mixup_alpha = normalise, mixup_alpha
        self._labels = split.labels
        self.position = start
        limit = start + num_batches if num_batches is not None else math.inf
        self._end = min(plan.num_batches, limit)
        size = decoder.transform.image_size
        self._shape = (plan.batch_size, size, size, 3)
        self._prefetch = prefetch
        self._pool = _shared_pool(workers) if workers > 0 else None
        self._chunk = max(1, min(32, plan.batch_size // (4 * max(workers, 1))))
        self._pending: dict[int, list] = {}
        self._slots: list[shared_memory.SharedMemory] = []
        self._finalizer = weakref.finalize(self, _free, self._slots)

    def close(self) -> None:
        """Ends the stream and frees its shared memory (also done when garbage collected)."""
        self._end = min(self._end, self.position)
        self._pending.clear()
        self._finalizer()

    def _window_end(self, b: int) -> float:
        """The first batch not to decode ahead of batch ``b``: the end of the stream, or for
        an eval split the end of ``b``'s pass."""
        if self._plan.train:
            return self._end
        return min(self._end, (b // self._plan.per_pass + 1) * self._plan.per_pass)

    def _dispatch(self, b: int) -> None:
        rows, examples = self._plan.rows(b)
        slot = self._slots[b % self._prefetch].name
        entries = self._split.index[rows]
        self._pending[b] = [
            self._pool.apply_async(_decode_task, (
                slot, self._shape, k, self._split.directory, entries[k:k + self._chunk],
                examples[k:k + self._chunk], self._decoder))
            for k in range(0, len(rows), self._chunk)]

    def _pixels(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 pixels and rows of batch ``b``, decoded here or collected from the workers."""
        rows, examples = self._plan.rows(b)
        if self._pool is None:
            pixels = np.empty((len(rows), *self._shape[1:]), np.uint8)
            self._decoder.decode_into(pixels, self._split, self._split.index[rows], examples)
            return pixels, rows
        if not self._slots:
            nbytes = int(np.prod(self._shape))
            self._slots.extend(shared_memory.SharedMemory(create=True, size=nbytes)
                               for _ in range(self._prefetch))
            for ahead in range(b, min(self._window_end(b), b + self._prefetch)):
                self._dispatch(ahead)
        for result in self._pending.pop(b):
            result.get()
        slot = self._slots[b % self._prefetch]
        # A copy: the slot is handed back (and, after an eval pass, freed) below.
        pixels = np.ndarray(self._shape, np.uint8, slot.buf)[:len(rows)].copy()
        if b + self._prefetch < self._window_end(b):
            self._dispatch(b + self._prefetch)
        elif not self._plan.train and b + 1 == self._window_end(b):
            _free(self._slots)  # the pass is over
        return pixels, rows

    def __next__(self) -> pipeline.Batch:
        if self.position >= self._end:
            self.close()
            raise StopIteration
        b = self.position
        pixels, rows = self._pixels(b)
        batch = {"inputs": self._normalise(pixels), "targets": self._labels[rows]}
        if len(rows) < self._plan.batch_size:
            batch = pipeline.pad_batch(batch, self._plan.batch_size)
        else:
            batch["weights"] = np.ones(len(rows), np.float32)
        if self._mixup_alpha is not None:
            rng = np.random.default_rng([self._plan.seed, MIXUP, b])
            batch["inputs"], batch["targets"] = mixup(batch["inputs"], batch["targets"], rng,
                                                      self._mixup_alpha)
        self.position = b + 1
        return batch


# The public entry points (what the workloads call).

def _default_workers(num_rows: int) -> int:
    return 0 if num_rows < SMALL_SPLIT else len(os.sched_getaffinity(0))


def num_examples(data_dir: str | os.PathLike, split: str) -> int:
    """Images of the prepared ``split`` ('train', 'validation' or 'test')."""
    directory = imagenet.imagenet_dir(data_dir)
    try:
        return len(np.load(Path(directory) / split / imagenet.INDEX_FILE, mmap_mode="r"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read prepared ImageNet in {directory} ({e}); prepare it "
                        "again with: algoperf datasets prepare imagenet --force") from None


def batches(data_dir: str | os.PathLike, split: str, batch_size: int, seed: int = 0,
            repeat: bool = True, num_batches: int | None = None,
            num_examples: int | None = None, image_size: int = IMAGE_SIZE,
            resize_size: int = RESIZE_SIZE,
            scale_range: tuple[float, float] = SCALE_RANGE,
            aspect_range: tuple[float, float] = ASPECT_RANGE,
            mean: tuple[float, float, float] = MEAN,
            stddev: tuple[float, float, float] = STDDEV, use_randaug: bool = False,
            use_mixup: bool = False, mixup_alpha: float = MIXUP_ALPHA,
            workers: int | None = None, start: int = 0) -> Batches:
    """The batches of ``split`` ('train', 'eval_train', 'validation', 'test') of the ImageNet
    prepared in ``data_dir``: see the module docstring. ``num_examples`` is the size of
    eval_train (default: the validation size); ``workers`` decoding processes (default: one
    per core, none for a split under 1,024 images); ``start`` skips that many batches."""
    directory = imagenet.imagenet_dir(data_dir)
    train = split == "train"
    source = imagenet.load(directory, "train" if split == "eval_train" else split)
    if train and not 0 < batch_size <= len(source):
        raise UserError(
            f"training batch size {batch_size} must be between 1 and the {len(source)} "
            "training images; return a smaller one from get_batch_size.")
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    order = None
    if split == "eval_train":
        count = num_examples if num_examples is not None else len(imagenet.load(
            directory, "validation"))
        rng = np.random.default_rng([seed, EVAL_TRAIN])
        order = rng.permutation(len(source))[:min(count, len(source))]
    plan = _Plan(len(source), batch_size, train, seed, order, repeat)
    transform = Transform(train, image_size, resize_size, tuple(scale_range),
                          tuple(aspect_range), use_randaug and train)
    workers = _default_workers(len(plan.order) if not train else len(source)) \
        if workers is None else workers
    return Batches(source, plan, _Decoder(transform, seed),
                   _Normaliser(mean, stddev, image_size),
                   mixup_alpha if use_mixup and train else None, workers, start, num_batches)
