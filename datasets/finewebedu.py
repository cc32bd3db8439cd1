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
tokens of the shuffled documents (AlgoPerf's 100,000 validation windows; a tenth of a
stream shorter than ten times that), the rest is train.

``prepare`` builds the layout from the official data as AlgoPerf's ``dataset_setup.py``
does: the parquet shards of ``sample/10BT`` (the Hub's file listing gives their names, sizes
and sha256; they download resumably, hash-checked) read in name order through Hugging Face's
``datasets``, the documents shuffled as ``Dataset.shuffle(seed=1996)`` shuffles them, each
tokenised with GPT-2's BPE (tiktoken, from the two published tables ``encoder.json`` and
``vocab.bpe``) with ``<|endoftext|>`` appended to every non-empty text, special tokens in the
text recognised as GPT-2's Hugging Face tokenizer recognises them. Each shard is tokenised
once into ``<data_dir>/.finewebedu.work/`` (an interrupted preparation resumes with the shards
done), then the documents are written in shuffled order. ``prepare_documents`` writes the
layout from any iterable of texts and any tokeniser's ``encode``; ``write_synthetic`` writes
it with random tokens for the tests and ``algoperf workloads check``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from algoperf.datasets import content, fetch
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError
from algoperf.hashing import file_sha256

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
SHUFFLE_SEED = 1996  # AlgoPerf's ds.shuffle(seed=1996) before tokenising
END_OF_TEXT = "<|endoftext|>"
BPE_FILES = ("encoder.json", "vocab.bpe")  # GPT-2's published tables (tiktoken reads them)
BPE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
SHARD_SUFFIX = ".parquet"
LISTING_FILE = "sample-10BT.json"  # the shards the Hub listed, written before they download
# Columns of every FineWeb-Edu shard (the ones AlgoPerf's preparation drops after reading text).
SHARD_COLUMNS = ("text", "id", "dump", "url", "file_path", "language", "language_score",
                 "token_count", "score", "int_score")
_TOKENIZE_BATCH = 1024  # documents read and tokenised at a time (AlgoPerf's map batch size)


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


def _checked(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    if ids.size and (ids.min() < 0 or ids.max() >= min(vocab_size, VOCAB_SIZE)):
        raise UserError(f"the tokeniser gave ids outside GPT-2's {VOCAB_SIZE}-token "
                        "vocabulary; FineWeb-Edu is prepared with GPT-2's BPE")
    return ids.astype(DTYPE)


def document_tokens(documents: Iterable[str],
                    encode: Callable[[str], list[int]]) -> Iterable[np.ndarray]:
    """Each document's token ids followed by the end-of-text id, as uint16 arrays."""
    for text in documents:
        yield _checked(np.asarray([*encode(text), EOS_ID], np.int64), VOCAB_SIZE)


def prepare_documents(documents: Iterable[str], encode: Callable[[str], list[int]],
                      out: Path, validation_tokens: int = VALIDATION_TOKENS) -> dict:
    """Tokenises ``documents`` (already shuffled) into ``out``: the first
    ``validation_tokens`` tokens of the stream to validation, the rest to train; writes
    ``meta.json`` and returns the token counts."""
    return write_streams(document_tokens(documents, encode), out, validation_tokens)


def write_streams(documents: Iterable[np.ndarray], out: Path, validation_tokens: int,
                  vocab_size: int = VOCAB_SIZE) -> dict:
    """Writes the documents' uint16 tokens, in order, as the split streams in ``out``: the
    first ``validation_tokens`` tokens to validation, the rest to train; writes ``meta.json``
    and returns the token counts."""
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(SPLITS, 0)
    files = {split: token_file(out, split).open("wb") for split in SPLITS}
    pending: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    buffered = dict.fromkeys(SPLITS, 0)

    def flush(split: str) -> None:
        if pending[split]:
            files[split].write(np.concatenate(pending[split]).tobytes())
            pending[split], buffered[split] = [], 0

    try:
        for ids in documents:
            room = max(0, validation_tokens - counts["validation"])
            for split, part in (("validation", ids[:room]), ("train", ids[room:])):
                if part.size:
                    pending[split].append(part)
                    counts[split] += int(part.size)
                    buffered[split] += int(part.size)
                    if buffered[split] >= _WRITE_CHUNK:
                        flush(split)
        for split in SPLITS:
            flush(split)
    finally:
        for handle in files.values():
            handle.close()
    (out / META_FILE).write_text(json.dumps({"tokens": counts, "vocab_size": vocab_size},
                                            indent=1) + "\n")
    return {"tokens": counts}


# Preparation from the official shards.

def hf_datasets():
    """Hugging Face's ``datasets`` library. This package's source folder is also called
    ``datasets`` (it installs as ``algoperf.datasets``), so with a checkout's root on
    ``sys.path`` (pytest, ``python -m`` from the checkout) a plain import would find it: the
    root is left off ``sys.path`` for this one import."""
    import importlib

    here = Path(__file__).resolve().parent
    loaded = sys.modules.get("datasets")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or ".").resolve().parent \
            != here:
        return loaded
    saved = sys.path[:]
    sys.modules.pop("datasets", None)
    sys.path[:] = [p for p in saved if (Path(p or ".").resolve() / "datasets") != here]
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise UserError("preparing FineWeb-Edu needs Hugging Face datasets and tiktoken; "
                        "install them with: pip install 'algoperf[finewebedu]'") from None
    finally:
        sys.path[:] = saved


def load_bpe(directory: Path):
    """GPT-2's BPE as a ``tiktoken.Encoding`` built from the tables ``encoder.json`` and
    ``vocab.bpe`` in ``directory`` (OpenAI's release; tiktoken's own ``gpt2`` encoding reads
    the same two files), with GPT-2's pre-tokenisation pattern and ``<|endoftext|>`` as its
    special token."""
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        raise UserError("preparing FineWeb-Edu needs tiktoken; install it with: "
                        "pip install 'algoperf[finewebedu]'") from None
    paths = {name: Path(directory) / name for name in BPE_FILES}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise UserError(f"FineWeb-Edu needs GPT-2's BPE tables {' and '.join(missing)} in "
                        f"{directory}: download them from {BPE_URL} (docs/datasets.md lists "
                        "their sha256)")
    try:
        # The hashes make tiktoken's file cache return exactly these files' bytes.
        ranks = data_gym_to_mergeable_bpe_ranks(
            str(paths["vocab.bpe"]), str(paths["encoder.json"]),
            vocab_bpe_hash=file_sha256(paths["vocab.bpe"]),
            encoder_json_hash=file_sha256(paths["encoder.json"]))
        end_of_text = json.loads(paths["encoder.json"].read_bytes())[END_OF_TEXT]
    except (AssertionError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"encoder.json and vocab.bpe in {directory} are not a matching pair "
                        f"of GPT-2 BPE tables with {END_OF_TEXT}: download them again from "
                        f"{BPE_URL}") from None
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={END_OF_TEXT: int(end_of_text)})


def encode_documents(encoding, texts: list[str | None]) -> list[np.ndarray]:
    """The documents' ids as AlgoPerf tokenises them: GPT-2's tokenizer applied to the text
    with ``<|endoftext|>`` appended, so an empty text stays empty and an ``<|endoftext|>``
    inside a text is the special token, as in Hugging Face's tokenizer."""
    eos = encoding.eot_token
    ids = encoding.encode_batch([text or "" for text in texts], allowed_special="all",
                                num_threads=max(1, len(os.sched_getaffinity(0))))
    return [_checked(np.asarray([*doc, eos] if text else doc, np.int64), encoding.n_vocab)
            for text, doc in zip(texts, ids, strict=True)]


def validation_size(total_tokens: int) -> int:
    """Validation tokens of a stream of ``total_tokens``: AlgoPerf's 100,000 windows, or a
    tenth of the stream when it holds fewer than ten times that (a few shards, the tests)."""
    return min(VALIDATION_TOKENS, total_tokens // 10)


_HUB_MIRROR = re.compile(r"(https?://[^/]+)/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+?)/?")


def _hub_listing(mirror: str) -> list[tuple[str, int, str]]:
    """``(name, size, sha256)`` of the parquet shards a Hub ``resolve`` URL's folder holds, as
    the Hub's tree API lists them (a file's LFS oid is its sha256)."""
    from huggingface_hub import HfApi

    endpoint, repo, revision, folder = _HUB_MIRROR.fullmatch(mirror).groups()
    entries = HfApi(endpoint=endpoint, token=False).list_repo_tree(
        repo, path_in_repo=folder, revision=revision, repo_type="dataset")
    return sorted((Path(e.path).name, int(e.lfs.size), e.lfs.sha256) for e in entries
                  if e.path.endswith(SHARD_SUFFIX) and getattr(e, "lfs", None) is not None)


def download_shards(raw_dir: Path, manifest: Manifest,
                    options: fetch.Options | None = None) -> list[Path]:
    """Fetches the shards the first Hub mirror of ``manifest`` lists into ``raw_dir``
    (resuming partial files, checking each file's sha256); returns their paths."""
    mirrors = [m for m in manifest.mirrors if _HUB_MIRROR.fullmatch(m)]
    if not mirrors:
        raise UserError(f"no FineWeb-Edu shards ({SHARD_SUFFIX}) in {raw_dir} and no Hugging "
                        "Face mirror in the manifest to download them from: put the shards "
                        "of sample/10BT into that folder")
    failures = []
    for mirror in mirrors:
        try:
            listing = _hub_listing(mirror)
        except Exception as e:  # noqa: BLE001 - huggingface_hub raises many kinds (HTTP, network)
            failures.append(f"{mirror}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            continue
        if not listing:
            failures.append(f"{mirror}: the folder lists no {SHARD_SUFFIX} files")
            continue
        # The listing first: a download cut short is resumed, never taken for all shards.
        (raw_dir / LISTING_FILE).write_text(json.dumps(
            {"mirror": mirror, "shards": [list(entry) for entry in listing]}, indent=1) + "\n")
        jobs = [fetch.Job((mirror.rstrip("/") + "/" + name,), raw_dir / name, size, sha256)
                for name, size, sha256 in listing]
        fetch.fetch_all(jobs, options or fetch.Options(), "finewebedu shards")
        return [job.dest for job in jobs]
    raise UserError(f"could not list the FineWeb-Edu shards ({'; '.join(failures)}); check the "
                    "network, or download sample/10BT/*.parquet elsewhere and pass the folder "
                    "holding them as --raw-dir")


def _shards(raw_dir: Path, manifest: Manifest, options: fetch.Options | None
            ) -> tuple[list[Path], dict[str, str] | None]:
    """The shards to prepare and, when they were listed by the Hub, their sha256 by name: the
    listed shards of an earlier download (downloading those missing), else the shards in
    ``raw_dir`` (a folder of the user's), else all the Hub lists (downloaded now)."""
    listing = raw_dir / LISTING_FILE
    if listing.is_file():
        try:
            entries = [(str(n), int(size), str(h))
                       for n, size, h in json.loads(listing.read_text())["shards"]]
        except (ValueError, KeyError, TypeError):
            entries = []
        complete = entries and all((raw_dir / n).is_file() and (raw_dir / n).stat().st_size
                                   == size for n, size, _ in entries)
        if complete:
            return [raw_dir / n for n, _, _ in entries], {n: h for n, _, h in entries}
    elif (local := sorted(raw_dir.glob(f"*{SHARD_SUFFIX}"))):
        return local, None
    paths = download_shards(raw_dir, manifest, options)
    entries = json.loads(listing.read_text())["shards"]
    return paths, {n: h for n, _, h in entries}


def _shard_columns(path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise UserError(f"{path} is not a readable parquet file ({type(e).__name__}: "
                        f"{str(e)[:120]}); download it again") from None
    missing = [c for c in SHARD_COLUMNS if c not in names]
    if missing:
        raise UserError(f"{path} has no column {', '.join(missing)}: it is not a FineWeb-Edu "
                        "shard (sample/10BT/*.parquet)")


def _shard_texts(path: Path) -> Iterator[list[str | None]]:
    """The shard's texts in row order, ``_TOKENIZE_BATCH`` at a time, read through Hugging
    Face's datasets (streamed: no Arrow cache) as AlgoPerf's ``load_dataset`` reads them."""
    shard = hf_datasets().load_dataset("parquet", data_files=str(path), split="train",
                                       streaming=True, columns=["text"])
    for batch in shard.iter(batch_size=_TOKENIZE_BATCH):
        yield batch["text"]


class _Progress:
    """A rich bar of documents per shard on a terminal, and a line per shard, on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from algoperf import terminal

        self.console = terminal.console(stderr=True)
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeRemainingColumn(), console=self.console,
                              disable=not self.console.is_terminal, transient=True)

    def __enter__(self) -> _Progress:
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def bar(self, name: str, total: int) -> Callable[[int], None]:
        task = self._bars.add_task(f"  tokenising {name}", total=total)
        return lambda n: self._bars.advance(task, n)

    def line(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)


def _tokenize_shard(path: Path, encoding, work: Path, header: dict,
                    progress: _Progress) -> np.ndarray:
    """Tokenises one shard into ``work`` (``<shard>.tokens``, its documents' uint16 ids one
    after the other, and ``<shard>.json``, written last, with their lengths); a record with the
    same ``header`` (shard and tables) from an earlier run is reused. Returns the lengths."""
    import pyarrow.parquet as pq

    record_path, tokens_path = work / f"{path.name}.json", work / f"{path.name}.tokens"
    try:
        record = json.loads(record_path.read_text())
        if record["header"] == header and tokens_path.stat().st_size == \
                DTYPE.itemsize * sum(record["lengths"]):
            progress.line(f"{path.name}: {len(record['lengths']):,} documents, tokenised before")
            return np.asarray(record["lengths"], np.int64)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    record_path.unlink(missing_ok=True)
    _shard_columns(path)
    advance = progress.bar(path.name, pq.ParquetFile(path).metadata.num_rows)
    lengths: list[int] = []
    partial = tokens_path.with_name(tokens_path.name + ".partial")
    with open(partial, "wb") as f:
        for texts in _shard_texts(path):
            documents = encode_documents(encoding, texts)
            if documents:
                f.write(np.concatenate(documents).tobytes())
            lengths += [len(d) for d in documents]
            advance(len(texts))
    os.replace(partial, tokens_path)
    record_path.write_text(json.dumps({"header": header, "lengths": lengths}))
    progress.line(f"{path.name}: {len(lengths):,} documents, {sum(lengths):,} tokens")
    return np.asarray(lengths, np.int64)


def shuffled_documents(token_files: list[Path], lengths: list[np.ndarray],
                       seed: int = SHUFFLE_SEED) -> Iterator[np.ndarray]:
    """The documents of all shards (in shard order, then row order, as ``load_dataset``
    concatenates them) in the order of ``Dataset.shuffle(seed)``: the permutation
    ``np.random.default_rng(seed).permutation(n)`` of the n rows."""
    streams = [np.memmap(p, DTYPE, mode="r") if p.stat().st_size else np.zeros(0, DTYPE)
               for p in token_files]
    shard = np.concatenate([np.full(len(n), k) for k, n in enumerate(lengths)]).astype(np.int64)
    starts = np.concatenate([np.cumsum(n) - n for n in lengths]).astype(np.int64)
    sizes = np.concatenate(lengths).astype(np.int64)
    for row in np.random.default_rng(seed).permutation(len(sizes)):
        yield streams[shard[row]][starts[row]:starts[row] + sizes[row]]


def prepare(raw_dir: Path, out: Path, manifest: Manifest, work: Path | None = None,
            options: fetch.Options | None = None) -> dict:
    """Prepares FineWeb-Edu into ``out`` from GPT-2's tables and the ``sample/10BT`` shards in
    ``raw_dir`` (downloading the shards when there are none: ``download_shards``), through
    ``work`` (default ``.finewebedu.work`` beside ``out``), which an interrupted run leaves
    for the next one to resume; returns what it was prepared from."""
    work = work or out.parent / f".{NAME}.work"
    encoding = load_bpe(raw_dir)
    shards, listed = _shards(raw_dir, manifest, options)
    tables = {name: file_sha256(raw_dir / name) for name in BPE_FILES}
    work.mkdir(parents=True, exist_ok=True)
    lengths, hashes = [], {}
    with _Progress() as progress:
        for path in shards:
            stat = path.stat()
            hashes[path.name] = file_sha256(path)
            if listed and listed[path.name] != hashes[path.name]:
                raise UserError(f"{path} has sha256 {hashes[path.name][:16]}..., the Hub lists "
                                f"{listed[path.name][:16]}...: delete it and download again")
            header = {"shard": path.name, "size": stat.st_size, "sha256": hashes[path.name],
                      "tables": tables}
            lengths.append(_tokenize_shard(path, encoding, work, header, progress))
        total = int(sum(n.sum() for n in lengths))
        progress.line(f"writing {sum(len(n) for n in lengths):,} documents, {total:,} tokens, "
                      f"shuffled (seed {SHUFFLE_SEED})")
    token_files = [work / f"{path.name}.tokens" for path in shards]
    result = write_streams(shuffled_documents(token_files, lengths), out,
                           validation_size(total), encoding.n_vocab)
    shutil.rmtree(work)
    return {**result, "documents": int(sum(len(n) for n in lengths)),
            "shuffle_seed": SHUFFLE_SEED, "end_of_text": encoding.eot_token,
            "vocab_size": encoding.n_vocab,
            "listed_by_the_hub": listed is not None,
            "shards": {path.name: {"sha256": hashes[path.name], "documents": len(n)}
                       for path, n in zip(shards, lengths, strict=True)}}


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
