"""ImageNet: the ILSVRC2012 train and validation archives and ImageNet-v2, as JPEG shards.

Inputs (in the raw folder, ``--raw-dir`` or ``<data_dir>/downloads/imagenet``):

- ``ILSVRC2012_img_train.tar`` (147,897,477,120 bytes) and ``ILSVRC2012_img_val.tar``
  (6,744,924,160 bytes), which only a user who accepted ImageNet's terms of access at
  image-net.org can download (Download > ILSVRC2012). The train archive holds one tar per
  class, ``n01440764.tar`` ... (1,281,167 JPEGs in all); the validation archive holds the
  50,000 JPEGs ``ILSVRC2012_val_00000001.JPEG`` ... directly.
- ``imagenetv2-matched-frequency.tar.gz``: the 10,000 ImageNet-v2 test images, from the
  dataset's own hosting (the built-in manifest's mirror), ``<class index>/<name>.jpeg``.

The archives are checked against their published digests as they are read, in one pass:
the sha256 and size that TFDS publishes for each ILSVRC archive (image-net.org publishes their
md5, quoted when a check fails), the manifest's sha256 for ImageNet-v2. A user's manifest
that lists the ILSVRC archives itself is checked by ``operations`` before preparation.

Labels are AlgoPerf's (TFDS ``imagenet2012`` and torchvision's ``ImageFolder`` agree): class
``k`` is the ``k``-th synset in sorted order (``manifests/imagenet_classes.txt``); a training
image's synset is its class tar; validation image ``ILSVRC2012_val_%08d`` has the synset on
that line of ``manifests/imagenet_validation_synsets.txt`` (the ground truth TFDS ships);
an ImageNet-v2 image's class is its folder number.

Prepared layout (JPEG bytes exactly as in the archives, nothing re-encoded)::

    classes.txt                   the 1,000 synsets, one per line, in class order
    meta.json                     format version and the number of images of each split
    <split>/NNNNN.jpegs           shards: JPEG files back to back
    <split>/index.npy             one row per image: shard, offset, length, label, height, width
    <split>/names.txt             the image's file name in its archive, one per line, index order

for the splits ``train`` (one shard per class), ``validation`` and ``test`` (ImageNet-v2),
each in index order: train by class then name, validation by name, test by class then name.
Reading an image is one ``pread`` from an open shard, the same for JAX and PyTorch.
Conversion runs in worker processes, one class tar or chunk of images at a time. The training
classes are converted into ``<data_dir>/.imagenet.work/train`` first, each with a completion
record: a preparation that is interrupted (killed, out of disk) resumes there, reading and
hashing the whole archive again but converting only the classes without a record; a replaced
archive file, or one found to be the wrong one, discards the work.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "imagenet"
TRAIN_ARCHIVE = "ILSVRC2012_img_train.tar"
VALIDATION_ARCHIVE = "ILSVRC2012_img_val.tar"
TEST_ARCHIVE = "imagenetv2-matched-frequency.tar.gz"
TEST_FOLDER = "imagenetv2-matched-frequency-format-val"
NUM_CLASSES = 1000
SPLITS = ("train", "validation", "test")
OFFICIAL_COUNTS = {"train": 1_281_167, "validation": 50_000, "test": 10_000}
FORMAT_VERSION = 1
CLASSES_FILE = "classes.txt"
META_FILE = "meta.json"
INDEX_FILE = "index.npy"
NAMES_FILE = "names.txt"
SHARD_SUFFIX = ".jpegs"
CHUNK = 1000  # validation and test images per shard
READ_CHUNK = 8 << 20
INDEX_DTYPE = np.dtype([("shard", "<u2"), ("offset", "<u8"), ("length", "<u4"),
                        ("label", "<i2"), ("height", "<u2"), ("width", "<u2")])
_VALIDATION_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")
_SYNSET = re.compile(r"n\d{8}")


@dataclasses.dataclass(frozen=True)
class Published:
    """What is published about one archive the user downloads by hand."""

    size: int
    sha256: str  # TFDS's registered checksum
    md5: str  # image-net.org's download page


MANUAL_ARCHIVES = {
    TRAIN_ARCHIVE: Published(147_897_477_120,
                             "b08200a27a8e34218a0e58fde36b0fe8f73bc377f4acea2d91602057c3ca45bb",
                             "1d675b47d978889d74fa0da5fadfb00e"),
    VALIDATION_ARCHIVE: Published(6_744_924_160,
                                  "c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0",
                                  "29b22e2961454d5413ddabcf34fc5622"),
}


def _resource_lines(name: str) -> list[str]:
    return (resources.files("algoperf.datasets") / "manifests" / name).read_text().split()


def class_synsets() -> list[str]:
    """The 1,000 ILSVRC2012 synsets in class order (sorted, as TFDS and ImageFolder)."""
    return _resource_lines("imagenet_classes.txt")


def validation_synsets() -> list[str]:
    """The synset of each validation image, ``ILSVRC2012_val_00000001`` first."""
    return _resource_lines("imagenet_validation_synsets.txt")


# Reading the archives: hashed as they stream, with progress.

class _HashingReader(io.RawIOBase):
    """A file read once from start to end, hashed on the way, reporting bytes read."""

    def __init__(self, f: BinaryIO, on_bytes) -> None:
        self._f, self._on_bytes = f, on_bytes
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.size += n
            self._on_bytes(n)
        return n or 0

    def drain(self) -> None:
        """Reads what the tar reader left (end-of-archive blocks), so all bytes are hashed."""
        while self.read(READ_CHUNK):
            pass


class _Progress:
    """One rich bar per archive on a terminal, a line per checked archive elsewhere."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from algoperf import terminal

        self.console = terminal.console(stderr=True)
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), TimeRemainingColumn(),
                              console=self.console, disable=not self.console.is_terminal,
                              transient=True)

    def __enter__(self) -> _Progress:
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def archive(self, name: str, size: int):
        task = self._bars.add_task(f"  {name}", total=size)
        return lambda n: self._bars.advance(task, n)

    def done(self, name: str, size: int, images: int) -> None:
        self.console.print(f"  {name}: {size:,} bytes, sha256 ok, {images:,} images",
                           highlight=False)


@dataclasses.dataclass(frozen=True)
class _Expected:
    size: int
    sha256: str
    md5: str | None = None


def _check_digest(name: str, reader: _HashingReader, expected: _Expected) -> None:
    digest = reader.sha256.hexdigest()
    if reader.size != expected.size or digest != expected.sha256:
        md5 = (f" (image-net.org publishes md5 {expected.md5}: compare with `md5sum {name}`)"
               if expected.md5 else "")
        raise UserError(f"{name} is not the published archive: {reader.size:,} bytes with sha256 "
                        f"{digest[:16]}..., expected {expected.size:,} bytes with sha256 "
                        f"{expected.sha256[:16]}...{md5}; download it again")


# Writing shards (in worker processes).

def _image_size(data: bytes, name: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{name} in the ImageNet archives is not a readable image ({e}); the "
                        "archive is damaged: download it again") from None
    return height, width


def _tar_images(data: bytes, origin: str) -> list[tuple[str, bytes]]:
    """The regular files of an in-memory (class) tar, by name."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            images = [(os.path.basename(m.name), tar.extractfile(m).read())
                      for m in tar.getmembers() if m.isfile()]
    except tarfile.TarError as e:
        raise UserError(f"{origin} in {TRAIN_ARCHIVE} is not a readable tar ({e}); the "
                        "archive is damaged: download it again") from None
    return sorted(images)


def write_shard(path: Path, images: list[tuple[str, bytes]] | bytes,
                origin: str = "") -> tuple[list[str], np.ndarray]:
    """Writes ``images`` ((name, bytes) pairs, or the bytes of a tar of them) back to back into
    ``path``; returns their names and (offset, length, height, width) rows, in shard order."""
    if isinstance(images, bytes):
        images = _tar_images(images, origin)
    rows = np.zeros((len(images), 4), np.int64)
    offset = 0
    with open(path, "wb") as f:
        for k, (name, data) in enumerate(images):
            height, width = _image_size(data, name)
            f.write(data)
            rows[k] = offset, len(data), height, width
            offset += len(data)
    return [name for name, _ in images], rows


# Preparation.

@dataclasses.dataclass
class _SplitWriter:
    """Collects the shards of one split as workers finish them."""

    directory: Path
    names: list[str] = dataclasses.field(default_factory=list)
    rows: list[np.ndarray] = dataclasses.field(default_factory=list)

    def add(self, shard: int, labels: int | np.ndarray,
            result: tuple[list[str], np.ndarray]) -> None:
        """Adds the images ``write_shard`` wrote into ``shard``, with their label(s)."""
        names, rows = result
        index = np.zeros(len(names), INDEX_DTYPE)
        index["shard"], index["label"] = shard, labels
        index["offset"], index["length"] = rows[:, 0], rows[:, 1]
        index["height"], index["width"] = rows[:, 2], rows[:, 3]
        self.names += names
        self.rows.append(index)

    def finish(self, by_label: bool) -> int:
        """Writes the index, sorted by name, or by label and then name; returns its length."""
        index = np.concatenate(self.rows) if self.rows else np.zeros(0, INDEX_DTYPE)
        names = np.asarray(self.names, dtype=str)
        order = (np.lexsort((names, index["label"])) if by_label
                 else np.argsort(names, kind="stable"))
        write_index(self.directory, index[order], names[order].tolist())
        return len(order)


def shard_path(directory: Path, shard: int) -> Path:
    return directory / f"{shard:05d}{SHARD_SUFFIX}"


def write_index(directory: Path, index: np.ndarray, names: list[str]) -> None:
    np.save(directory / INDEX_FILE, index, allow_pickle=False)
    (directory / NAMES_FILE).write_text("".join(f"{n}\n" for n in names))


class _Pool:
    """Worker processes with a bounded number of tasks in flight (each holds image bytes)."""

    def __init__(self, workers: int) -> None:
        # forkserver: a fork of a process that runs JAX threads can deadlock.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("forkserver"))
        self._limit = workers + 1
        self._pending: list[tuple[concurrent.futures.Future, object]] = []

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, done, fn, *args) -> None:
        """Runs ``fn(*args)`` in a worker; ``done(result)`` later, in this process."""
        while len(self._pending) >= self._limit:
            self._finish_first()
        self._pending.append((self._pool.submit(fn, *args), done))

    def _finish_first(self) -> None:
        future, done = self._pending.pop(0)
        done(future.result())

    def join(self) -> None:
        while self._pending:
            self._finish_first()


def _require(raw_dir: Path, name: str) -> Path:
    path = raw_dir / name
    if not path.is_file():
        raise UserError(f"imagenet needs {name} in {raw_dir}: download it from image-net.org "
                        "(after accepting its terms of access: Download > ILSVRC2012) and put "
                        "it there, or pass --raw-dir to the folder holding it")
    return path


def _open_archive(raw_dir: Path, name: str, expected: _Expected, progress: _Progress,
                  mode: str):
    path = _require(raw_dir, name)
    f = open(path, "rb", buffering=READ_CHUNK)
    reader = _HashingReader(f, progress.archive(name, expected.size))
    try:
        return f, reader, tarfile.open(fileobj=io.BufferedReader(reader, READ_CHUNK), mode=mode,
                                       bufsize=READ_CHUNK)
    except tarfile.TarError as e:
        f.close()
        raise UserError(f"{path} is not a readable tar archive ({e}); download it again") \
            from None


def _members(archive: tarfile.TarFile, origin: str) -> Iterator[tuple[str, bytes]]:
    try:
        for member in archive:
            if member.isfile():
                yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"{origin} is not a readable tar archive ({e}); download it "
                        "again") from None


WORK_SOURCE = "SOURCE.json"
DONE_SUFFIX = ".done.json"  # a class converted into the work folder: its names and rows


def convert_class(directory: Path, label: int, data: bytes, origin: str
                  ) -> tuple[list[str], np.ndarray]:
    """In a worker: writes class tar ``data`` into shard ``label`` of ``directory``, then its
    completion record; a class with a record survives an interrupted preparation."""
    path = shard_path(directory, label)
    partial = path.with_name(path.name + ".partial")
    names, rows = write_shard(partial, data, origin)
    os.replace(partial, path)
    record = path.with_name(path.name + DONE_SUFFIX)
    record.with_suffix(".partial").write_text(json.dumps({"names": names,
                                                          "rows": rows.tolist()}))
    os.replace(record.with_suffix(".partial"), record)
    return names, rows


def _converted_classes(directory: Path, source: dict) -> dict[int, tuple[list[str], np.ndarray]]:
    """The classes an interrupted preparation of the same archive converted in ``directory``
    (emptied first if it holds the work of another archive)."""
    marker = directory / WORK_SOURCE
    try:
        same = json.loads(marker.read_text()) == source
    except (OSError, ValueError):
        same = False
    if directory.is_dir() and not same:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker.with_suffix(".partial").write_text(json.dumps(source))
    os.replace(marker.with_suffix(".partial"), marker)
    done = {}
    for record in directory.glob(f"*{SHARD_SUFFIX}{DONE_SUFFIX}"):
        label = int(record.name.split(".")[0])
        data = json.loads(record.read_text())  # written whole (os.replace) or not at all
        rows = np.asarray(data["rows"], np.int64).reshape(-1, 4)
        shard = shard_path(directory, label)
        if shard.is_file() and shard.stat().st_size == int(rows[:, 1].sum()):
            done[label] = (data["names"], rows)
    return done


def _prepare_train(raw_dir: Path, out: Path, work: Path, expected: _Expected, pool: _Pool,
                   progress: _Progress) -> int:
    """Converts the class tars into ``work/train`` (kept across interrupted runs: a class
    converted before is only hashed again, not converted), checks the archive's digest, and
    moves the shards into ``out``. An archive of other bytes discards the work."""
    classes = {synset: k for k, synset in enumerate(class_synsets())}
    directory = work / "train"
    stat = _require(raw_dir, TRAIN_ARCHIVE).stat()  # a replaced file is another archive
    done = _converted_classes(directory, {
        "archive": TRAIN_ARCHIVE, "size": expected.size, "sha256": expected.sha256,
        "file": [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]})
    if done:
        progress.console.print(f"  {TRAIN_ARCHIVE}: resuming, {len(done)} classes were "
                               "converted before (they are only hashed)", highlight=False)
    try:
        count, size = _convert_train(raw_dir, out, directory, classes, done, expected, pool,
                                     progress)
    except UserError:  # not the archive, or a damaged one: what was converted is no use
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    progress.done(TRAIN_ARCHIVE, size, count)
    return count


def _convert_train(raw_dir: Path, out: Path, directory: Path, classes: dict[str, int],
                   done: dict, expected: _Expected, pool: _Pool,
                   progress: _Progress) -> tuple[int, int]:
    writer = _SplitWriter(directory)
    f, reader, archive = _open_archive(raw_dir, TRAIN_ARCHIVE, expected, progress, "r|")
    with f, archive:
        for name, data in _members(archive, TRAIN_ARCHIVE):
            synset = os.path.basename(name).removesuffix(".tar")
            if synset not in classes or not name.endswith(".tar"):
                raise UserError(f"{TRAIN_ARCHIVE} holds {name!r}, not one tar per ILSVRC2012 "
                                "class (n01440764.tar, ...): it is not the training archive")
            label = classes[synset]
            if label in done:
                writer.add(label, label, done[label])
                continue
            pool.submit(lambda result, label=label: writer.add(label, label, result),
                        convert_class, directory, label, data, name)
        pool.join()
        reader.drain()
    _check_digest(TRAIN_ARCHIVE, reader, expected)
    for path in [*directory.glob(f"*{DONE_SUFFIX}"), directory / WORK_SOURCE]:
        path.unlink()
    os.replace(directory, out / "train")
    writer.directory = out / "train"
    return writer.finish(by_label=True), reader.size


def _chunked_split(archive_items: Iterator[tuple[str, int, bytes]], directory: Path,
                   pool: _Pool) -> _SplitWriter:
    """Writes (name, label, bytes) items into shards of CHUNK images."""
    directory.mkdir()
    writer = _SplitWriter(directory)
    chunk: list[tuple[str, int, bytes]] = []
    shards = iter(range(1 << 16))

    def flush() -> None:
        shard = next(shards)
        labels = {name: label for name, label, _ in chunk}
        pool.submit(lambda result: writer.add(
            shard, np.array([labels[n] for n in result[0]]), result),
            write_shard, shard_path(directory, shard), [(n, d) for n, _, d in chunk])
        chunk.clear()

    for item in archive_items:
        chunk.append(item)
        if len(chunk) == CHUNK:
            flush()
    if chunk:
        flush()
    pool.join()
    return writer


def _prepare_validation(raw_dir: Path, out: Path, expected: _Expected, pool: _Pool,
                        progress: _Progress) -> int:
    classes = {synset: k for k, synset in enumerate(class_synsets())}
    truth = validation_synsets()

    def items(archive) -> Iterator[tuple[str, int, bytes]]:
        for name, data in _members(archive, VALIDATION_ARCHIVE):
            base = os.path.basename(name)
            match = _VALIDATION_NAME.fullmatch(base)
            if match is None or not 1 <= int(match[1]) <= len(truth):
                raise UserError(f"{VALIDATION_ARCHIVE} holds {name!r}, not an ILSVRC2012 "
                                "validation image: it is not the validation archive")
            yield base, classes[truth[int(match[1]) - 1]], data

    f, reader, archive = _open_archive(raw_dir, VALIDATION_ARCHIVE, expected, progress, "r|")
    with f, archive:
        writer = _chunked_split(items(archive), out / "validation", pool)
        reader.drain()
    _check_digest(VALIDATION_ARCHIVE, reader, expected)
    count = writer.finish(by_label=False)
    progress.done(VALIDATION_ARCHIVE, reader.size, count)
    return count


def _prepare_test(raw_dir: Path, out: Path, expected: _Expected, pool: _Pool,
                  progress: _Progress) -> int:
    def items(archive) -> Iterator[tuple[str, int, bytes]]:
        for name, data in _members(archive, TEST_ARCHIVE):
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != TEST_FOLDER or not parts[1].isdigit() \
                    or not 0 <= int(parts[1]) < NUM_CLASSES:
                raise UserError(f"{TEST_ARCHIVE} holds {name!r}, not {TEST_FOLDER}/<class "
                                "0-999>/<image>: it is not ImageNet-v2 matched-frequency")
            yield f"{int(parts[1])}/{parts[2]}", int(parts[1]), data

    f, reader, archive = _open_archive(raw_dir, TEST_ARCHIVE, expected, progress, "r|gz")
    with f, archive:
        writer = _chunked_split(items(archive), out / "test", pool)
        reader.drain()
    _check_digest(TEST_ARCHIVE, reader, expected)
    count = writer.finish(by_label=True)
    progress.done(TEST_ARCHIVE, reader.size, count)
    return count


def expected_archives(manifest: Manifest) -> dict[str, _Expected]:
    """The size and sha256 each archive must have: the manifest's where it lists the archive,
    else the published digests of the ILSVRC archives."""
    expected = {name: _Expected(p.size, p.sha256, p.md5) for name, p in MANUAL_ARCHIVES.items()}
    expected.update({f.name: _Expected(f.size, f.sha256) for f in manifest.files})
    missing = [name for name in (TRAIN_ARCHIVE, VALIDATION_ARCHIVE, TEST_ARCHIVE)
               if name not in expected]
    if missing:
        raise UserError(f"the imagenet manifest lists no {', '.join(missing)}; add it (name, "
                        "size, sha256) or use the built-in manifest")
    return expected


def prepare(raw_dir: Path, out: Path, manifest: Manifest, workers: int | None = None,
            work: Path | None = None) -> dict:
    """Converts the three archives in ``raw_dir`` into the prepared layout in ``out``. The
    train conversion goes through ``work`` (default: ``.imagenet.work`` beside ``out``, i.e.
    in the data directory), which an interrupted run leaves for the next one to resume."""
    work = work or out.parent / f".{NAME}.work"
    expected = expected_archives(manifest)
    synsets = class_synsets()
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    for name in (TRAIN_ARCHIVE, VALIDATION_ARCHIVE, TEST_ARCHIVE):
        _require(raw_dir, name)
    counts = {}
    with _Progress() as progress, _Pool(workers) as pool:
        counts["train"] = _prepare_train(raw_dir, out, work, expected[TRAIN_ARCHIVE], pool,
                                         progress)
        counts["validation"] = _prepare_validation(raw_dir, out, expected[VALIDATION_ARCHIVE],
                                                   pool, progress)
        counts["test"] = _prepare_test(raw_dir, out, expected[TEST_ARCHIVE], pool, progress)
    (out / CLASSES_FILE).write_text("".join(f"{s}\n" for s in synsets))
    _write_meta(out, counts)
    return {"examples": counts}


def _write_meta(out: Path, counts: dict[str, int]) -> None:
    (out / META_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION,
                                             "examples": counts}, indent=1) + "\n")


# Reading the prepared layout.

class Split:
    """One prepared split: its index, and its images read from the shards by row.

    Picklable (worker processes get a copy); each process opens the shards it reads once.
    """

    def __init__(self, directory: Path, index: np.ndarray) -> None:
        self.directory = Path(directory)
        self.index = index
        self._files: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.index["label"].astype(np.int32)

    def read(self, row: int) -> bytes:
        """The encoded image of ``row``."""
        return self.read_entry(self.index[row])

    def read_entry(self, entry: np.void) -> bytes:
        """The encoded image an index row (of this split) points at."""
        shard = int(entry["shard"])
        fd = self._files.get(shard)
        if fd is None:
            fd = self._files[shard] = os.open(shard_path(self.directory, shard), os.O_RDONLY)
        return os.pread(fd, int(entry["length"]), int(entry["offset"]))

    def __getstate__(self) -> dict:
        return {"directory": self.directory, "index": self.index}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["directory"], state["index"])

    def __del__(self) -> None:
        for fd in getattr(self, "_files", {}).values():
            os.close(fd)


def imagenet_dir(data_dir: str | os.PathLike | None) -> Path:
    """``<data_dir>/imagenet``; UserError if ImageNet is not prepared there."""
    if data_dir is None:
        raise UserError("the imagenet workloads need a data directory; prepare ImageNet with: "
                        "algoperf datasets prepare imagenet --data-dir DIR --raw-dir ARCHIVES")
    root = Path(os.path.expanduser(data_dir))
    directory = root / NAME
    if not (directory / content.MANIFEST_NAME).is_file():
        raise UserError(f"ImageNet is not prepared in {root}; run: algoperf datasets prepare "
                        f"imagenet --data-dir {root} --raw-dir ARCHIVES")
    return directory


def load(directory: Path, split: str) -> Split:
    """The prepared ``split`` ('train', 'validation' or 'test') in ``directory``."""
    if split not in SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; one of {', '.join(SPLITS)}")
    try:
        index = np.load(Path(directory) / split / INDEX_FILE, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read prepared ImageNet in {directory} ({e}); prepare it again "
                        "with: algoperf datasets prepare imagenet --force") from None
    if index.dtype != INDEX_DTYPE:
        raise UserError(f"prepared ImageNet in {directory} has an index of another format; "
                        "prepare it again with: algoperf datasets prepare imagenet --force")
    return Split(Path(directory) / split, index)


# Synthetic data in the prepared format.

def synthetic_jpeg(rng: np.random.Generator, label: int, width: int, height: int,
                   quality: int = 90) -> bytes:
    """A JPEG of a smooth, noisy, class-tinted pattern: it compresses (and decodes) about as
    a photograph of the same size does."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frequency = rng.uniform(0.01, 0.08, 3)
    channels = [127 + 80 * np.sin(frequency[c] * (x + 1.7 * y) + phase[c]) for c in range(3)]
    pixels = np.stack(channels, -1) + rng.normal(0, 18, (height, width, 3))
    pixels[..., label % 3] += 40
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_synthetic(data_dir: Path, num_train: int = 64, num_validation: int = 32,
                    num_test: int = 32, min_side: int = 40, max_side: int = 96,
                    seed: int = 0) -> Path:
    """Writes synthetic ImageNet into ``data_dir/imagenet`` in the prepared layout: small JPEGs
    of random sizes and labels, one shard per split, with meta and content manifest (whose
    source says it is synthetic); returns the folder."""
    directory = Path(data_dir) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = {"train": num_train, "validation": num_validation, "test": num_test}
    for split, count in counts.items():
        split_dir = directory / split
        split_dir.mkdir(exist_ok=True)
        labels = rng.integers(0, NUM_CLASSES, count)
        sides = rng.integers(min_side, max_side + 1, (count, 2))
        images = [(f"{split}_{k:06d}.JPEG",
                   synthetic_jpeg(rng, int(labels[k]), int(sides[k, 0]), int(sides[k, 1])))
                  for k in range(count)]
        names, rows = write_shard(shard_path(split_dir, 0), images)
        index = np.zeros(count, INDEX_DTYPE)
        index["offset"], index["length"] = rows[:, 0], rows[:, 1]
        index["height"], index["width"] = rows[:, 2], rows[:, 3]
        index["label"] = labels
        write_index(split_dir, index, names)
    (directory / CLASSES_FILE).write_text("".join(f"{s}\n" for s in class_synsets()))
    _write_meta(directory, counts)
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
