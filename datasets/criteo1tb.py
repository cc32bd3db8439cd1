"""Criteo 1TB click logs: the official day files split into AlgoPerf's 5,000,000-line files.

The official data is 24 gzipped TSV files ``day_0.gz`` ... ``day_23.gz`` (Criteo hands them
out as one ``all_days.zip`` behind a link that must be resolved per download). Each line is
one impression: the click label (0 or 1), 13 integer count features, then 26 categorical
features as 8-digit hexadecimal hashes, tab-separated, with a missing value an empty field.

Preparation decompresses each day as a stream (days in parallel, one per core) and cuts it
into files of 5,000,000 lines, ``day_<d>_00``, ``day_<d>_01``, ... (``split -a 2 -d -l
5000000``, as AlgoPerf's preparation script), and writes ``meta.json`` with every file's
number of lines. AlgoPerf's splits of them:

- 'train' (and 'eval_train'): every file of days 0-22 (4,195,197,692 lines);
- 'test': ``day_23_00`` ... ``day_23_18`` (95,000,000 lines);
- 'validation': ``day_23_19`` ... ``day_23_35`` (83,274,637 lines).

``write_synthetic`` writes small files in that format for ``algoperf workloads check`` and the
tests: two training days and a day 23 of 36 files, so the splits are AlgoPerf's by name.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import io
import json
import multiprocessing
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "criteo1tb"
NUM_DAYS = 24
EVAL_DAY = 23
NUM_EVAL_DAY_FILES = 36
NUM_TEST_FILES = NUM_EVAL_DAY_FILES // 2 + 1  # day_23_00 ... day_23_18
LINES_PER_FILE = 5_000_000
NUM_DENSE = 13
NUM_CATEGORICAL = 26
META_FILE = "meta.json"
ARCHIVE = "all_days.zip"
OFFICIAL_COUNTS = {"train": 4_195_197_692, "validation": 83_274_637, "test": 95_000_000}
SPLITS = ("train", "validation", "test")
_READ_BYTES = 1 << 24


def file_name(day: int, index: int) -> str:
    """The prepared file ``index`` of ``day``: ``day_<day>_<index, two digits>``."""
    return f"day_{day}_{index:02d}"


def split_of(name: str) -> str:
    """Which split the prepared file ``name`` belongs to (AlgoPerf's rule)."""
    _, day, index = name.split("_")
    if int(day) != EVAL_DAY:
        return "train"
    return "test" if int(index) < NUM_TEST_FILES else "validation"


# Preparation.


def split_stream(source: BinaryIO, out: Path, day: int,
                 lines_per_file: int = LINES_PER_FILE) -> dict[str, int]:
    """Cuts the decompressed lines of ``source`` into ``day_<day>_NN`` files of
    ``lines_per_file`` lines in ``out``, reading 16 MB at a time; returns lines per file. A
    last line without a newline gets one."""
    counts: dict[str, int] = {}
    index, lines, sink = 0, 0, None
    pending = b""
    try:
        while True:
            chunk = source.read(_READ_BYTES)
            if not chunk:
                if pending:
                    chunk, pending = pending + b"\n", b""
                else:
                    break
            else:
                chunk, pending = pending + chunk, b""
                cut = chunk.rfind(b"\n") + 1
                chunk, pending = chunk[:cut], chunk[cut:]
            view = memoryview(chunk)
            while view:
                if sink is None:
                    name = file_name(day, index)
                    sink = open(out / name, "wb")  # noqa: SIM115 - closed below
                    counts[name] = lines = 0
                room = lines_per_file - lines
                newlines = np.flatnonzero(np.frombuffer(view, np.uint8) == 10)
                take = min(room, len(newlines))
                end = int(newlines[take - 1]) + 1 if take else 0
                sink.write(view[:end])
                lines += take
                counts[name] = lines
                view = view[end:]
                if lines == lines_per_file:
                    sink.close()
                    sink, index = None, index + 1
    finally:
        if sink is not None:
            sink.close()
    return counts


def _day_sources(raw_dir: Path, manifest: Manifest) -> dict[int, tuple[str, str | None]]:
    """``{day: (file, member of all_days.zip or None)}`` of the day files in ``raw_dir``."""
    names = [f.name for f in manifest.files] or [f"day_{d}.gz" for d in range(NUM_DAYS)]
    if (raw_dir / ARCHIVE).is_file() and not manifest.files:
        with zipfile.ZipFile(raw_dir / ARCHIVE) as archive:
            members = {Path(m).name: m for m in archive.namelist()}
        missing = [n for n in names if n not in members]
        if missing:
            raise UserError(f"{ARCHIVE} lacks {', '.join(missing)}; it is not Criteo's archive")
        return {_day(n): (ARCHIVE, members[n]) for n in names}
    missing = [n for n in names if not (raw_dir / n).is_file()]
    if missing:
        raise UserError(
            f"Criteo 1TB needs {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} in "
            f"{raw_dir}: download all_days.zip from "
            "https://ailab.criteo.com/criteo-1tb-click-logs-dataset/ into that folder (or its "
            "day_0.gz ... day_23.gz), then run: algoperf datasets prepare criteo1tb "
            "--raw-dir FOLDER")
    days = {_day(n): (n, None) for n in names}
    if EVAL_DAY not in days:
        raise UserError(f"Criteo 1TB preparation needs day_{EVAL_DAY}.gz, the eval day")
    return days


def _day(name: str) -> int:
    try:
        return int(name.removeprefix("day_").removesuffix(".gz"))
    except ValueError:
        raise UserError(f"{name} is not a Criteo day file (day_<N>.gz)") from None


def _prepare_day(raw_dir: str, file: str, member: str | None, out: str, day: int,
                 lines_per_file: int) -> dict[str, int]:
    path = Path(raw_dir) / file
    try:
        if member is None:
            with gzip.open(path, "rb") as source:
                return split_stream(source, Path(out), day, lines_per_file)
        with zipfile.ZipFile(path) as archive, archive.open(member) as packed, \
                gzip.open(packed, "rb") as source:
            return split_stream(source, Path(out), day, lines_per_file)
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise UserError(f"{member or file} is not a whole gzip file ({e}); get it again") \
            from None


def prepare_days(raw_dir: Path, out: Path, manifest: Manifest,
                 lines_per_file: int = LINES_PER_FILE, workers: int | None = None) -> dict:
    """Splits every day of ``raw_dir`` into ``out`` (one process per day, ``workers`` at a
    time: default one per core) and writes ``meta.json``."""
    sources = _day_sources(Path(raw_dir), manifest)
    workers = workers or min(len(sources), len(os.sched_getaffinity(0)))
    counts: dict[str, int] = {}
    # forkserver: never fork a parent that may run JAX's threads.
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_prepare_day, str(raw_dir), file, member, str(out), day,
                               lines_per_file) for day, (file, member) in sorted(sources.items())]
        for future in futures:
            counts.update(future.result())
    write_meta(out, counts)
    return {"examples": split_counts(counts)}


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Prepares the official day files of ``raw_dir`` (``all_days.zip`` or ``day_N.gz``)."""
    return prepare_days(raw_dir, out, manifest)


# The prepared layout.


def split_counts(files: dict[str, int]) -> dict[str, int]:
    totals = dict.fromkeys(SPLITS, 0)
    for name, lines in files.items():
        totals[split_of(name)] += lines
    return totals


def write_meta(directory: Path, files: dict[str, int]) -> None:
    ordered = dict(sorted(files.items(), key=lambda item: _order(item[0])))
    (Path(directory) / META_FILE).write_text(json.dumps(
        {"files": ordered, "lines": split_counts(files)}, indent=1) + "\n")


def _order(name: str) -> tuple[int, int]:
    _, day, index = name.split("_")
    return int(day), int(index)


def files(directory: Path) -> dict[str, int]:
    """``{file name: lines}`` of the prepared data in ``directory``, in day and file order."""
    try:
        return json.loads((Path(directory) / META_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read {Path(directory) / META_FILE} ({e}); prepare Criteo 1TB "
                        "with: algoperf datasets prepare criteo1tb --raw-dir DIR") from None


def split_files(directory: Path, split: str) -> list[tuple[Path, int]]:
    """``(path, lines)`` of the files of ``split`` ('train', 'validation', 'test') in order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return [(Path(directory) / name, lines) for name, lines in files(directory).items()
            if split_of(name) == split]


def counts(directory: Path) -> dict[str, int]:
    """Lines of each split of the prepared data in ``directory``."""
    return split_counts(files(directory))


# Synthetic data in the official format.


def synthetic_lines(count: int, seed: int) -> bytes:
    """``count`` lines of Criteo's TSV format: about 1 in 4 clicks, counts from a heavy-tailed
    law with some negative and missing values, categorical hashes drawn from small per-column
    vocabularies (Zipf-like) with some missing."""
    random = np.random.RandomState(seed)
    labels = (random.rand(count) < 0.25).astype(int)
    counts_ = np.floor(random.pareto(1.2, (count, NUM_DENSE)) * 3).astype(np.int64)
    counts_[random.rand(count, NUM_DENSE) < 0.05] = -1
    missing_dense = random.rand(count, NUM_DENSE) < 0.2
    vocab = random.randint(0, 2 ** 32, (NUM_CATEGORICAL, 64), dtype=np.uint64)
    picks = np.minimum(random.zipf(1.5, (count, NUM_CATEGORICAL)) - 1, 63)
    missing_cat = random.rand(count, NUM_CATEGORICAL) < 0.1
    out = io.StringIO()
    for row in range(count):
        dense = ["" if missing_dense[row, j] else str(counts_[row, j]) for j in range(NUM_DENSE)]
        cats = ["" if missing_cat[row, j] else f"{int(vocab[j, picks[row, j]]):08x}"
                for j in range(NUM_CATEGORICAL)]
        out.write("\t".join([str(labels[row]), *dense, *cats]) + "\n")
    return out.getvalue().encode()


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _synthetic_files(num_train: int, num_validation: int, num_test: int
                     ) -> Iterator[tuple[str, int]]:
    for day, lines in enumerate(_spread(num_train, 2)):
        for index, part in enumerate(_spread(lines, 2)):
            yield file_name(day, index), part
    for index, part in enumerate(_spread(num_test, NUM_TEST_FILES)):
        yield file_name(EVAL_DAY, index), part
    for index, part in enumerate(_spread(num_validation, NUM_EVAL_DAY_FILES - NUM_TEST_FILES)):
        yield file_name(EVAL_DAY, NUM_TEST_FILES + index), part


def write_synthetic(data_dir: Path, num_train: int = 1024, num_test: int = 256,
                    num_validation: int | None = None) -> Path:
    """Writes synthetic Criteo 1TB into ``data_dir/criteo1tb`` in the prepared layout (days 0
    and 1 of two files each holding ``num_train`` lines, day 23's 36 files holding
    ``num_test`` test and ``num_validation`` (default: as many) validation lines) with its
    content manifest; returns the folder."""
    directory = Path(data_dir) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    num_validation = num_test if num_validation is None else num_validation
    written = {}
    for seed, (name, lines) in enumerate(_synthetic_files(num_train, num_validation, num_test)):
        (directory / name).write_bytes(synthetic_lines(lines, seed))
        written[name] = lines
    write_meta(directory, written)
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
