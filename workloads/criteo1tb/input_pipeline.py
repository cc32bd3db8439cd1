"""Criteo 1TB's input pipeline: the prepared TSV files streamed, parsed and hashed in numpy.

Each line becomes one example as AlgoPerf's tf.data parser makes it:

- ``inputs`` float32 (39,): the 13 counts as ``log(max(x, 0) + 1)`` (a missing count, an
  empty field or '-1', is 0), then the 26 categorical ids, each
  ``Fingerprint64(value + str(column)) % RAW_VOCAB_SIZES[column]`` (TensorFlow's
  ``to_hash_bucket_fast``; a missing value is '00000000'), carried as float32 -- ids above
  2**24 lose their low bits, as AlgoPerf's do; the model reduces them modulo its vocabulary;
- ``targets`` float32 (1,): the click label; ``weights`` float32: 1, 0 for padding rows.

Fingerprint64 is farmhash's (TensorFlow's ``Fingerprint64``); it is written out here in
numpy for the strings of 1 to 16 bytes that Criteo's fields give (an 8-digit hash and one or
two column digits) so that a batch of 262,144 lines hashes its 6.8 million values in
vectorised steps; the tests hold it to the ``pyfarmhash`` bindings of Google's C++ code.

Streams never hold more than one batch's lines: files are read 16 MB at a time, a batch's
lines are parsed in blocks on a pool of threads (numpy releases the GIL), written into the
batch's arrays.

- 'train': an endless stream; epoch ``e`` reads the training files in the order of the
  permutation ``default_rng([seed, e])`` gives, each file's lines in order (AlgoPerf shuffles
  the file list and never the examples), batches cut across file boundaries, the remainder
  of an epoch dropped. Batch ``b`` depends only on the seed and ``b``: ``start=b`` resumes
  there (the files before it skipped by their line counts), and ``position`` is the number
  of batches yielded, what a checkpoint stores.
- eval splits: their files in order, the last batch padded with weight-0 rows; with
  ``limit``, only the first ``limit`` lines.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from algoperf.datasets import criteo1tb as criteo_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline

NUM_DENSE = criteo_data.NUM_DENSE
NUM_CATEGORICAL = criteo_data.NUM_CATEGORICAL
NUM_FIELDS = 1 + NUM_DENSE + NUM_CATEGORICAL
NUM_INPUTS = NUM_DENSE + NUM_CATEGORICAL
# The raw vocabulary sizes of the 26 columns (Google's TPU DLRM tutorial, as AlgoPerf).
RAW_VOCAB_SIZES = np.array([
    39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10,
    2208, 11938, 155, 4, 976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
], dtype=np.uint64)
MISSING_CATEGORY = b"00000000"
# Lines parsed per task: its intermediate arrays (a few MB) stay below malloc's mmap
# threshold, so they are reused rather than faulted in afresh for every block.
BLOCK_LINES = 4_096
READ_BYTES = 1 << 24
EVAL_TRAIN_ENTROPY = (0, 0, 1)  # three words: never a training epoch's [seed, epoch]

_TAB, _NEWLINE, _MINUS, _ZERO = 9, 10, 45, 48
_PAD = 32  # spare bytes after a block, so a field's fixed-width read stays inside
K0 = np.uint64(0xC3A5C85C97CB3127)
K2 = np.uint64(0x9AE16A3B2F90404F)


# Hashing: farmhash's Fingerprint64 of short strings, vectorised.


def _rotate(value: np.ndarray, shift: int) -> np.ndarray:
    return (value >> np.uint64(shift)) | (value << np.uint64(64 - shift))


def _hash_len16(u: np.ndarray, v: np.ndarray, mul: np.ndarray) -> np.ndarray:
    a = (u ^ v) * mul
    a ^= a >> np.uint64(47)
    b = (v ^ a) * mul
    b ^= b >> np.uint64(47)
    return b * mul


def _byte(word: np.ndarray, index: np.ndarray) -> np.ndarray:
    return (word >> (index * np.uint64(8))) & np.uint64(0xFF)


def fingerprint64(low: np.ndarray, high: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """farmhash's ``Fingerprint64`` of strings of 1 to 16 bytes given as two little-endian
    words each (``low``: bytes 0-7, ``high``: bytes 8-15, zero past the length):
    farmhashna's ``HashLen0to16``, the branch ``Fingerprint64`` takes for such strings."""
    n = np.asarray(lengths).astype(np.uint64)
    eight = np.uint64(8)
    with np.errstate(over="ignore"):
        mul = K2 + n * np.uint64(2)
        # 8 to 16 bytes: the words at 0 and at len - 8.
        offset = (n - eight) * eight % np.uint64(64)  # only read where 8 < len < 16
        tail = np.where(n >= 16, high, np.where(
            n <= 8, low, (low >> offset) | (high << ((np.uint64(64) - offset) % np.uint64(64)))))
        a = low + K2
        long = _hash_len16(_rotate(tail, 37) * mul + a, (_rotate(a, 25) + tail) * mul, mul)
        if np.all(n >= 8):
            return long
        # 4 to 7 bytes: the 32-bit words at 0 and at len - 4.
        shift = (n - np.uint64(4)) % eight * eight
        medium = _hash_len16(n + ((low & np.uint64(0xFFFFFFFF)) << np.uint64(3)),
                             (low >> shift) & np.uint64(0xFFFFFFFF), mul)
        # 1 to 3 bytes: the first, middle and last byte.
        y = _byte(low, np.uint64(0)) + (_byte(low, (n >> np.uint64(1)) % eight) << eight)
        z = n + (_byte(low, (n - np.uint64(1)) % eight) << np.uint64(2))
        mixed = (y * K2) ^ (z * K0)
        short = (mixed ^ (mixed >> np.uint64(47))) * K2
    return np.where(n >= 8, long, np.where(n >= 4, medium, short))


@functools.cache
def _column_suffixes() -> tuple[np.ndarray, np.ndarray]:
    """``str(column)`` of each column as a little-endian word (26,) and its length (26,)."""
    text = [str(c).encode() for c in range(NUM_CATEGORICAL)]
    return (np.array([int.from_bytes(t, "little") for t in text], np.uint64),
            np.array([len(t) for t in text], np.uint64))


def _byte_masks() -> np.ndarray:
    return np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)


_BYTE_MASKS = _byte_masks()  # [k]: the low k bytes of a word
_MISSING_WORD = np.uint64(int.from_bytes(MISSING_CATEGORY, "little"))
_MINUS_ONE_WORD = np.uint64(int.from_bytes(b"-1", "little"))


# Parsing.


def _bad(message: str) -> UserError:
    return UserError(f"not Criteo 1TB's TSV format: {message}; prepare the data again with: "
                     "algoperf datasets prepare criteo1tb --force")


def _gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
            width: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``width`` bytes of each field (zeros past its length) and the mask of them.
    ``buf`` must hold ``width`` spare bytes past its last field (``parse_lines`` pads it)."""
    columns = np.arange(width, dtype=np.int32)
    inside = columns < lengths[:, None]
    chars = buf[starts.astype(np.int32)[:, None] + columns]
    chars *= inside
    return chars, inside


def _integers(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Decimal integers (an optional '-', digits); an empty field is 0."""
    width = int(lengths.max(initial=0))
    if width > 18:
        raise _bad("an integer field longer than 18 characters")
    chars, inside = _gather(buf, starts, lengths, max(width, 1))
    negative = inside[:, 0] & (chars[:, 0] == _MINUS)
    digits = inside.copy()
    digits[:, 0] &= ~negative
    values = chars.astype(np.int64) - _ZERO
    if np.any(digits & ((values < 0) | (values > 9))):
        raise _bad("a count field that is not an integer")
    number = np.zeros(len(lengths), np.int64)
    for k in range(chars.shape[1]):
        number = np.where(digits[:, k], number * 10 + values[:, k], number)
    return np.where(negative, -number, number)


def _words(buf: np.ndarray) -> np.ndarray:
    """Every 8-byte little-endian word of ``buf``, one per byte offset (unaligned reads of
    the same memory, no copy)."""
    return np.ndarray((len(buf) - 7,), "<u8", buffer=buf, strides=(1,))


def _category_ids(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(lines, 26) hashed ids of the categorical fields (rows: lines, then columns): each
    value and its column's digits as two words, hashed."""
    lines = len(lengths) // NUM_CATEGORICAL
    column = np.tile(np.arange(NUM_CATEGORICAL), lines)
    if np.any(lengths > 14):
        raise _bad("a categorical field longer than 14 characters")
    words = _words(buf)
    size = lengths.astype(np.uint64)
    low = words[starts] & _BYTE_MASKS[np.minimum(lengths, 8)]
    high = words[starts + 8] & _BYTE_MASKS[np.clip(lengths - 8, 0, 8)]
    missing = (lengths == 0) | ((lengths == 2) & (low == _MINUS_ONE_WORD))
    low = np.where(missing, _MISSING_WORD, low)
    high = np.where(missing, np.uint64(0), high)
    size = np.where(missing, np.uint64(len(MISSING_CATEGORY)), size)
    suffix_words, suffix_lengths = _column_suffixes()
    suffix = suffix_words[column]
    eight, sixty_four = np.uint64(8), np.uint64(64)
    inside_low = size < eight
    with np.errstate(over="ignore"):
        shift = size * eight % sixty_four
        new_low = np.where(inside_low, low | (suffix << shift), low)
        spill = np.where(inside_low, suffix >> ((sixty_four - shift) % sixty_four),
                         suffix << ((size - eight) * eight % sixty_four))
    high = high | np.where(inside_low & (shift == 0), np.uint64(0), spill)
    hashes = fingerprint64(new_low, high, size + suffix_lengths[column])
    return (hashes % RAW_VOCAB_SIZES[column]).reshape(lines, NUM_CATEGORICAL)


def parse_lines(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs float32 (n, 39), targets float32 (n, 1))`` of ``n`` complete TSV lines."""
    buf = np.frombuffer(block + bytes(_PAD), np.uint8)
    ends = np.flatnonzero((buf == _TAB) | (buf == _NEWLINE))
    if len(ends) % NUM_FIELDS or (len(ends) and buf[ends[-1]] != _NEWLINE):
        raise _bad(f"lines must have {NUM_FIELDS} tab-separated fields")
    ends = ends.reshape(-1, NUM_FIELDS)
    if np.any(buf[ends[:, -1]] != _NEWLINE) or np.any(buf[ends[:, :-1]] == _NEWLINE):
        raise _bad(f"lines must have {NUM_FIELDS} tab-separated fields")
    starts = np.empty_like(ends)
    starts[:, 0] = np.concatenate([[0], ends[:-1, -1] + 1])
    starts[:, 1:] = ends[:, :-1] + 1
    lengths = ends - starts
    numeric = 1 + NUM_DENSE
    numbers = _integers(buf, starts[:, :numeric].ravel(), lengths[:, :numeric].ravel())
    numbers = numbers.reshape(-1, numeric).astype(np.float32)
    inputs = np.empty((len(ends), NUM_INPUTS), np.float32)
    inputs[:, :NUM_DENSE] = np.log(np.maximum(numbers[:, 1:], np.float32(0)) + np.float32(1))
    inputs[:, NUM_DENSE:] = _category_ids(buf, starts[:, numeric:].ravel(),
                                          lengths[:, numeric:].ravel())
    return inputs, numbers[:, :1].copy()


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0)),
                                                 thread_name_prefix="criteo-parse")


# Reading lines.


class LineReader:
    """The lines of a sequence of files, read 16 MB at a time, handed out as blocks of
    complete lines; a file's last line without a newline gets one."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = iter(paths)
        self._file = None
        self._buffer = b""
        self._newlines = np.empty(0, np.int64)  # positions of the newlines in the buffer
        self._used = 0  # newlines handed out from the buffer

    def _fill(self) -> bool:
        """Reads more; False at the end of the last file."""
        while True:
            if self._file is None:
                path = next(self._paths, None)
                if path is None:
                    return False
                try:
                    self._file = open(path, "rb")  # noqa: SIM115 - closed at its end
                except OSError as e:
                    raise UserError(f"cannot read {path} ({e.strerror}); prepare Criteo 1TB "
                                    "again with: algoperf datasets prepare criteo1tb "
                                    "--force") from None
            chunk = self._file.read(READ_BYTES)
            if not chunk:
                self._file.close()
                self._file = None
                rest = self._rest()
                if rest and not rest.endswith(b"\n"):
                    self._reset(rest + b"\n")
                    return True
                continue
            self._reset(self._rest() + chunk)
            return True

    def _rest(self) -> bytes:
        start = int(self._newlines[self._used - 1]) + 1 if self._used else 0
        return self._buffer[start:]

    def _reset(self, buffer: bytes) -> None:
        self._buffer = buffer
        self._newlines = np.flatnonzero(np.frombuffer(buffer, np.uint8) == _NEWLINE)
        self._used = 0

    def take(self, count: int) -> list[bytes]:
        """Up to ``count`` lines (fewer only at the end of the files) as blocks of at most
        ``BLOCK_LINES`` complete lines."""
        blocks: list[bytes] = []
        while count > 0:
            available = len(self._newlines) - self._used
            if available == 0:
                if not self._fill():
                    break
                continue
            while count > 0 and available > 0:
                take = min(count, available, BLOCK_LINES)
                start = int(self._newlines[self._used - 1]) + 1 if self._used else 0
                end = int(self._newlines[self._used + take - 1]) + 1
                blocks.append(self._buffer[start:end])
                self._used += take
                count, available = count - take, available - take
        return blocks

    def skip(self, count: int) -> int:
        """Drops up to ``count`` lines without parsing them; returns how many it dropped."""
        dropped = 0
        while dropped < count:
            blocks = self.take(min(count - dropped, 1 << 20))
            if not blocks:
                break
            dropped += sum(block.count(b"\n") for block in blocks)
        return dropped

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_batch(reader: LineReader, batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The next ``batch_size`` lines parsed, zero rows past the end of the files: inputs
    (batch_size, 39), targets (batch_size, 1) and the number of real rows."""
    blocks = reader.take(batch_size)
    inputs = np.zeros((batch_size, NUM_INPUTS), np.float32)
    targets = np.zeros((batch_size, 1), np.float32)
    offsets = np.cumsum([0] + [block.count(b"\n") for block in blocks])
    if len(blocks) > 1:
        parsed = _pool().map(parse_lines, blocks)
    else:
        parsed = map(parse_lines, blocks)
    for start, (block_inputs, block_targets) in zip(offsets, parsed, strict=False):
        inputs[start:start + len(block_inputs)] = block_inputs
        targets[start:start + len(block_targets)] = block_targets
    return inputs, targets, int(offsets[-1])


# The streams.


class TrainBatches(Iterator[pipeline.Batch]):
    """The endless training stream (see the module docstring); ``position`` batches yielded
    so far, counting the ``start`` skipped."""

    def __init__(self, files: Sequence[tuple[Path, int]], batch_size: int, seed: int,
                 start: int = 0) -> None:
        self._files = list(files)
        lines = sum(n for _, n in self._files)
        if not 0 < batch_size <= lines:
            raise UserError(f"training batch size {batch_size} must be between 1 and the "
                            f"{lines} training examples; return a smaller one from "
                            "get_batch_size.")
        self._batch_size, self._seed = batch_size, seed
        self._per_epoch = lines // batch_size
        self.position = start
        self._reader: LineReader | None = None
        self._left = 0  # batches left in the current epoch's reader
        self._open(start)

    def _open(self, position: int) -> None:
        epoch, within = divmod(position, self._per_epoch)
        order = np.random.default_rng([self._seed, epoch]).permutation(len(self._files))
        skip = within * self._batch_size
        paths = []
        for i in order:
            path, lines = self._files[i]
            if skip >= lines and not paths:
                skip -= lines
                continue
            paths.append(path)
        if self._reader is not None:
            self._reader.close()
        self._reader = LineReader(paths)
        self._reader.skip(skip)
        self._left = self._per_epoch - within

    def __next__(self) -> pipeline.Batch:
        if self._left == 0:
            self._open(self.position)
        inputs, targets, _ = read_batch(self._reader, self._batch_size)
        self._left -= 1
        self.position += 1
        return {"inputs": inputs, "targets": targets,
                "weights": np.ones(self._batch_size, np.float32)}


def eval_batches(files: Sequence[tuple[Path, int]], batch_size: int, repeat: bool = True,
                 limit: int | None = None) -> Iterator[pipeline.Batch]:
    """The lines of ``files`` in order (the first ``limit``), in batches of ``batch_size``,
    the last padded with weight-0 rows; again and again if ``repeat``."""
    if batch_size <= 0:
        raise ValueError(f"eval batch size must be positive, got {batch_size}")
    total = sum(n for _, n in files)
    total = total if limit is None else min(limit, total)
    while True:
        reader = LineReader([path for path, _ in files])
        try:
            for start in range(0, total, batch_size):
                size = min(batch_size, total - start)
                inputs, targets, real = read_batch(reader, size)
                if real != size:
                    raise _bad(f"the files hold fewer lines than their meta.json says "
                               f"({start + real} of {total})")
                yield pipeline.pad_batch({"inputs": inputs, "targets": targets}, batch_size)
        finally:
            reader.close()
        if not repeat:
            return


def eval_train_files(files: Sequence[tuple[Path, int]]) -> list[tuple[Path, int]]:
    """The training files in the fixed order 'eval_train' reads (its examples: the first
    lines of it): the permutation ``default_rng(EVAL_TRAIN_ENTROPY)`` gives."""
    order = np.random.default_rng(EVAL_TRAIN_ENTROPY).permutation(len(files))
    return [files[i] for i in order]


def num_batches(num_examples: int, batch_size: int) -> int:
    return math.ceil(num_examples / batch_size)
