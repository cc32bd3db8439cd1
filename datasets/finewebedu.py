"""FineWeb-Edu for finewebedu_lm: GPT-2 token streams on disk, read through a memory map.

AlgoPerf's language-model workload trains on FineWeb-Edu's ``sample-10BT`` (Hugging Face
``HuggingFaceFW/fineweb-edu``), each document tokenised with GPT-2's BPE and followed by the
end-of-text token (50256), the documents' tokens concatenated into one stream per split and
cut into windows of 1,025 tokens. Here the prepared layout is exactly that stream, one file
per split, so the input pipeline's cost per batch is a gather of whole windows from a memory
map, never a tokenisation:

- ``<split>.bin``: the split's tokens as little-endian uint16 (GPT-2's 50,257 ids fit);
- ``meta.json``: ``{"tokens": {split: count}, "vocab_size": 50257}``.

Splits: ``train`` and ``validation``; the validation stream is the first ``VALIDATION_TOKENS``
tokens of the shuffled documents (AlgoPerf's 100,000 validation windows), the rest is train.
``prepare_documents`` writes the layout from any iterable of texts and any tokeniser's
``encode``; ``write_synthetic`` writes it with random tokens for the tests and
``algoperf workloads check``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.errors import UserError

NAME = "finewebedu"
VOCAB_SIZE = 50_257  # GPT-2's BPE
EOS_ID = 50_256  # GPT-2's <|endoftext|>, appended to every document
DTYPE = np.dtype("<u2")
SPLITS = ("train", "validation")
META_FILE = "meta.json"
WINDOW = 1025  # AlgoPerf's windows: 1,024 inputs and the 1,024 targets shifted by one
# AlgoPerf's split sizes, in windows of 1,025 tokens, until prepared data says otherwise.
OFFICIAL_WINDOWS = {"train": 8_749_870, "validation": 100_000}
VALIDATION_TOKENS = OFFICIAL_WINDOWS["validation"] * WINDOW
_WRITE_CHUNK = 1 << 22  # tokens buffered per write while preparing


def token_file(directory: Path | str, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown FineWeb-Edu split {split!r}; expected one of "
                         f"{', '.join(SPLITS)}")
    return Path(directory) / f"{split}.bin"


def tokens(directory: Path | str, split: str) -> np.ndarray:
    """The split's token stream, memory-mapped read-only (uint16)."""
    path = token_file(directory, split)
    if not path.is_file():
        raise UserError(f"{path} is missing: FineWeb-Edu is not prepared in {directory}; run "
                        "`algoperf datasets download finewebedu`")
    if path.stat().st_size == 0:
        return np.zeros(0, DTYPE)
    return np.memmap(path, dtype=DTYPE, mode="r")


def num_windows(directory: Path | str, split: str, sequence_length: int) -> int:
    """How many windows of ``sequence_length + 1`` tokens the split holds."""
    meta = json.loads((Path(directory) / META_FILE).read_text())
    return meta["tokens"][split] // (sequence_length + 1)


def windows(stream: np.ndarray, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)``, each (N, sequence_length): the stream cut into N windows of
    ``sequence_length + 1`` tokens (the remainder dropped), inputs the first tokens of each,
    targets the last. Strided views of ``stream``: indexing them reads only those rows."""
    window = sequence_length + 1
    count = len(stream) // window
    if count == 0:
        raise UserError(f"a FineWeb-Edu split of {len(stream)} tokens holds no window of "
                        f"{window} tokens; prepare more data or use shorter sequences")
    step = stream.strides[0]
    shape, strides = (count, sequence_length), (window * step, step)
    inputs = np.lib.stride_tricks.as_strided(stream, shape, strides, writeable=False)
    targets = np.lib.stride_tricks.as_strided(stream[1:], shape, strides, writeable=False)
    return inputs, targets


def document_tokens(documents: Iterable[str],
                    encode: Callable[[str], list[int]]) -> Iterable[np.ndarray]:
    """Each document's token ids followed by the end-of-text id, as uint16 arrays."""
    for text in documents:
        ids = np.asarray([*encode(text), EOS_ID], np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= VOCAB_SIZE):
            raise UserError(f"the tokeniser gave ids outside GPT-2's {VOCAB_SIZE}-token "
                            "vocabulary; FineWeb-Edu is prepared with GPT-2's BPE")
        yield ids.astype(DTYPE)


def prepare_documents(documents: Iterable[str], encode: Callable[[str], list[int]],
                      out: Path, validation_tokens: int = VALIDATION_TOKENS) -> dict:
    """Tokenises ``documents`` (already shuffled) into ``out``: the first
    ``validation_tokens`` tokens of the stream to validation, the rest to train; writes
    ``meta.json`` and returns the token counts."""
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(SPLITS, 0)
    files = {split: token_file(out, split).open("wb") for split in SPLITS}
    pending: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}

    def flush(split: str) -> None:
        if pending[split]:
            files[split].write(np.concatenate(pending[split]).tobytes())
            pending[split] = []

    try:
        for ids in document_tokens(documents, encode):
            room = max(0, validation_tokens - counts["validation"])
            for split, part in (("validation", ids[:room]), ("train", ids[room:])):
                if part.size:
                    pending[split].append(part)
                    counts[split] += int(part.size)
                    if sum(len(p) for p in pending[split]) >= _WRITE_CHUNK:
                        flush(split)
        for split in SPLITS:
            flush(split)
    finally:
        for handle in files.values():
            handle.close()
    (out / META_FILE).write_text(json.dumps({"tokens": counts, "vocab_size": VOCAB_SIZE},
                                            indent=1) + "\n")
    return {"tokens": counts}


def write_synthetic(data_dir: Path | str, num_train: int = 2 * WINDOW,
                    num_test: int = WINDOW, seed: int = 0) -> Path:
    """Writes a synthetic FineWeb-Edu into ``data_dir/finewebedu`` in the prepared layout:
    ``num_train`` training and ``num_test`` validation tokens (the held-out split; named as
    the other writers' sizes, so the test suites size every dataset alike), random GPT-2 ids
    with end-of-text tokens between documents of 1 to 200 tokens, and its content manifest;
    returns the folder. The defaults hold two training windows and one validation window of
    the full 1,025 tokens (``algoperf workloads check``); the conformance suite's 80 and 24
    tokens give 8 and 2 windows of its 8-token sequences."""
    directory = Path(data_dir) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    random_state = np.random.RandomState(seed)
    sizes = {"train": num_train, "validation": num_test}
    for split, count in sizes.items():
        stream = random_state.randint(0, EOS_ID, size=count).astype(DTYPE)
        position = 0
        while position < count:  # documents end with end-of-text, as prepared ones do
            position += int(random_state.randint(1, 201))
            if position < count:
                stream[position] = EOS_ID
        token_file(directory, split).write_bytes(stream.tobytes())
    (directory / META_FILE).write_text(json.dumps({"tokens": sizes, "vocab_size": VOCAB_SIZE},
                                                  indent=1) + "\n")
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
