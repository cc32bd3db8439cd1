"""The Python documentation corpus of the ``charlm`` dev workload: ``pydoc_data/topics.py``.

Every CPython installation ships ``Lib/pydoc_data/topics.py``, the text ``help()`` shows for
statements, operators and special methods, generated from the Language Reference at release
time: about 466,000 characters of English prose and code. The file differs between Python
releases, and charlm's targets were measured on one of them, so the corpus is pinned by the
sha256 of that file (``CORPUS_SHA256``, CPython 3.11.7's, also in the dataset manifest): the
running Python's copy is used only when it matches, and any other is refused with the way to
get the pinned one (``algoperf datasets download python_docs`` fetches it from CPython's
repository, or ``prepare --raw-dir`` takes it from a folder).

The file is Python source; its ``topics`` dict is read with ``ast.literal_eval``, never
executed. Text: the topics in sorted key order, joined by blank lines, as UTF-8 bytes (a
byte-level vocabulary of 256: the 1,722 non-ASCII bytes need no tokenizer). Split in blocks of
512 bytes, so that every split samples the whole text (its end alone is one long table): of
every 100 consecutive blocks the 99th is 'validation', the 100th 'test', the others 'train'.
Each split's blocks, joined, are cut into sequences of ``SEQUENCE_LENGTH`` inputs whose targets
are the inputs shifted by one byte.

Prepared layout: ``<data_dir>/python_docs/corpus.txt`` (the joined text) with the content
manifest, whose source records the corpus sha256.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

CORPUS_FILE = "topics.py"
CORPUS_SHA256 = "abaa56a64551d8eead1b19cbae3c6db443f99f0cab81df07bed3cb75c0db9346"
CORPUS_RELEASE = "CPython 3.11.7"
CORPUS_TEXT_BYTES = 466_273  # of its joined topics
PREPARED_FILE = "corpus.txt"
VOCAB_SIZE = 256  # bytes
SEQUENCE_LENGTH = 32
BLOCK_BYTES = 512
SPLIT_PERIOD = 100  # of every 100 blocks: 98 train, 1 validation, 1 test
SPLITS = ("train", "validation", "test")


def bundled_corpus() -> Path:
    """The running Python's ``pydoc_data/topics.py``."""
    import pydoc_data

    return Path(pydoc_data.__file__).parent / CORPUS_FILE


def corpus_text(source: bytes, origin: str) -> bytes:
    """The joined topics of a ``topics.py`` whose sha256 is ``CORPUS_SHA256``; UserError for
    any other file, saying how to get the pinned one."""
    digest = hashlib.sha256(source).hexdigest()
    if digest != CORPUS_SHA256:
        raise UserError(
            f"charlm's corpus {origin} has sha256 {digest[:12]}..., not the {CORPUS_RELEASE} "
            f"file ({CORPUS_SHA256[:12]}...) its targets were measured on; fetch that one with "
            "`algoperf datasets download python_docs --data-dir DIR` (or put it in a folder and "
            "run `algoperf datasets prepare python_docs --raw-dir FOLDER`) and pass --data-dir")
    tree = ast.parse(source)
    topics = ast.literal_eval(tree.body[-1].value)
    return "\n\n".join(topics[key] for key in sorted(topics)).encode("utf-8")


def dataset_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``<data_dir>/python_docs`` if it holds a prepared copy (with its manifest), else None."""
    if data_dir is None:
        return None
    directory = Path(os.path.expanduser(data_dir)) / "python_docs"
    return directory if (directory / content.MANIFEST_NAME).is_file() else None


@functools.cache
def _text(data_dir: str | None) -> bytes:
    directory = dataset_dir(data_dir)
    if directory is None:
        path = bundled_corpus()
        return corpus_text(path.read_bytes(), str(path))
    recorded = content.read(directory).source.get("corpus_sha256")
    if recorded != CORPUS_SHA256:
        raise UserError(f"{directory} was prepared from a corpus with sha256 {recorded}, not "
                        f"the {CORPUS_RELEASE} file charlm's targets were measured on; prepare "
                        "it again: algoperf datasets download python_docs --force")
    return (directory / PREPARED_FILE).read_bytes()


def _split_bytes(text: bytes, split: str) -> bytes:
    """The blocks of ``split``, joined: of every ``SPLIT_PERIOD`` consecutive blocks of
    ``BLOCK_BYTES``, the last but one is 'validation', the last 'test', the rest 'train'."""
    if split not in SPLITS:
        raise ValueError(f"python_docs has no split {split!r}")
    blocks = [text[start:start + BLOCK_BYTES] for start in range(0, len(text), BLOCK_BYTES)]
    wanted = {"validation": [SPLIT_PERIOD - 2], "test": [SPLIT_PERIOD - 1],
              "train": range(SPLIT_PERIOD - 2)}[split]
    return b"".join(block for index, block in enumerate(blocks)
                    if index % SPLIT_PERIOD in wanted)


def sequences(text: bytes, length: int = SEQUENCE_LENGTH) -> dict[str, np.ndarray]:
    """``{'inputs', 'targets'}`` int32 (N, length): consecutive windows of ``text`` and the
    same windows one byte later (the last incomplete window is dropped)."""
    data = np.frombuffer(text, np.uint8).astype(np.int32)
    count = (len(data) - 1) // length
    inputs = data[:count * length].reshape(count, length)
    targets = data[1:count * length + 1].reshape(count, length)
    return {"inputs": inputs, "targets": targets}


def load_split(split: str, data_dir: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """The sequences of ``split``: from the prepared copy in ``data_dir`` if there is one,
    else from the running Python's corpus (refused unless it is the pinned one)."""
    if split not in SPLITS:
        raise ValueError(f"python_docs has no split {split!r}")
    key = None if data_dir is None else os.path.expanduser(str(data_dir))
    return sequences(_split_bytes(_text(key), split))


def split_sizes() -> dict[str, int]:
    """The number of sequences of each split of the pinned corpus."""
    blocks = -(-CORPUS_TEXT_BYTES // BLOCK_BYTES)
    last = CORPUS_TEXT_BYTES - (blocks - 1) * BLOCK_BYTES  # the final block is shorter
    sizes = {}
    for split in SPLITS:
        wanted = {"validation": {SPLIT_PERIOD - 2}, "test": {SPLIT_PERIOD - 1}}.get(
            split, set(range(SPLIT_PERIOD - 2)))
        size = sum(last if index == blocks - 1 else BLOCK_BYTES
                   for index in range(blocks) if index % SPLIT_PERIOD in wanted)
        sizes[split] = (size - 1) // SEQUENCE_LENGTH
    return sizes


def _write_corpus(path: Path, out: Path) -> dict:
    (out / PREPARED_FILE).write_bytes(corpus_text(path.read_bytes(), str(path)))
    return {"corpus_sha256": CORPUS_SHA256, "corpus_release": CORPUS_RELEASE}


def prepare(raw_dir: Path, out: Path, manifest: Manifest) -> dict:
    """Writes the joined text of ``raw_dir/topics.py`` (already checked against the manifest's
    sha256) to ``out/corpus.txt``."""
    del manifest
    return _write_corpus(raw_dir / CORPUS_FILE, out)


def write_synthetic(data_dir: Path) -> Path:
    """Writes the prepared layout into ``data_dir/python_docs`` for the conformance and parity
    tests, from the running Python's corpus (the real text; nothing is downloaded)."""
    directory = Path(data_dir) / "python_docs"
    directory.mkdir(parents=True, exist_ok=True)
    source = _write_corpus(bundled_corpus(), directory)
    content.write(directory, content.scan(directory, "python_docs", source))
    return directory
