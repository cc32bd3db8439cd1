"""LibriSpeech (OpenSLR 12) for the speech workloads: one ``.npy`` pair per utterance.

The prepared layout, ``<data_dir>/librispeech/``, is the per-utterance layout AlgoPerf's
``librispeech_preprocess.py`` writes, split for split:

- ``<split>.csv``: one row per utterance (``id,num_samples,num_tokens``), in order; the
  splits are ``train`` (train-clean-100, train-clean-360 and train-other-500), ``validation``
  (dev-clean and dev-other) and ``test`` (test-clean), each the concatenation of its archives
  in that order, an archive's utterances sorted by speaker, chapter and number;
- ``<split>/<id>_audio.npy``: the 16 kHz samples at int16 scale (int16 here; AlgoPerf stores
  the same values as int64);
- ``<split>/<id>_targets.npy``: int32 SentencePiece ids of the transcript, EOS appended;
- ``spm_model.model``: the SentencePiece unigram model of 1,024 pieces the ids come from
  (AlgoPerf names its copy ``spm_model.vocab``).

AlgoPerf keeps utterances of at most 320,000 samples (20 s) whose transcript has at most 256
characters; the workloads pad audio to 320,000 samples and targets to 256 ids.

``prepare`` builds the layout from the six official archives (``<subset>.tar.gz``, each
``LibriSpeech/<subset>/<speaker>/<chapter>/`` with ``<speaker>-<chapter>-<n>.flac`` files and
a ``<speaker>-<chapter>.trans.txt`` of ``<id> <TRANSCRIPT>`` lines), as AlgoPerf does: a
transcript is its line stripped, after the first space; the tokenizer is trained on the
train-clean-100 transcripts alone (all of them, before the length filter, at most 10**7
characters counting a newline each, as AlgoPerf's ``librispeech_tokenizer.py``). Each archive
is streamed once; its chapters are decoded (FLAC through libsndfile, ``soundfile``) and written
by a pool of worker processes into ``<data_dir>/.librispeech.work/``, where a journal per
archive records the finished chapters: an interrupted preparation resumes there, reading the
archives again but decoding only the chapters without a record. ``write_synthetic`` writes the
same layout with synthetic speech-like noise and random transcripts (its own small tokenizer)
for ``algoperf workloads check`` and the tests.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import multiprocessing
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "librispeech"
SAMPLE_RATE = 16_000
MAX_AUDIO_SAMPLES = 320_000
MAX_TARGET_TOKENS = 256
MAX_TRANSCRIPT_CHARACTERS = 256
VOCAB_SIZE = 1024
TOKENIZER_FILE = "spm_model.model"
SPLITS = ("train", "validation", "test")
OFFICIAL_COUNTS = {"train": 263_840, "validation": 5_348, "test": 2_472}
# The official archives (OpenSLR 12) in preparation order, each with the split it goes to.
SUBSETS = {"train-clean-100": "train", "train-clean-360": "train", "train-other-500": "train",
           "dev-clean": "validation", "dev-other": "validation", "test-clean": "test"}
# Utterances in each archive before the length filter (the TFDS catalog's, which AlgoPerf's
# preprocessing checks against).
PUBLISHED_UTTERANCES = {"train-clean-100": 28_539, "train-clean-360": 104_014,
                        "train-other-500": 148_688, "dev-clean": 2_703, "dev-other": 2_864,
                        "test-clean": 2_620}
TOKENIZER_SUBSET = "train-clean-100"
TOKENIZER_MAX_CHARACTERS = 10_000_000
ARCHIVE_ROOT = "LibriSpeech"
READ_CHUNK = 8 << 20
_UTTERANCE_ID = re.compile(r"(\d+)-(\d+)-(\d+)")


def archive_name(subset: str) -> str:
    """The official archive's file name: ``<subset>.tar.gz``."""
    return f"{subset}.tar.gz"


def train_tokenizer(transcripts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> bytes:
    """A SentencePiece unigram model trained on ``transcripts`` with AlgoPerf's options
    (character coverage 1.0, every other option SentencePiece's default), as the bytes of its
    ``.model`` file."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(transcripts), model_writer=model,
                                   vocab_size=vocab_size, model_type="unigram",
                                   character_coverage=1.0, minloglevel=2)
    return model.getvalue()


def load_tokenizer(directory: Path):
    """The prepared dataset's ``sentencepiece.SentencePieceProcessor``."""
    import sentencepiece as spm

    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: prepare LibriSpeech first "
                        "(algoperf datasets prepare librispeech)")
    return spm.SentencePieceProcessor(model_file=str(path))


def tokenize(tokenizer, transcript: str) -> np.ndarray:
    """The int32 ids of ``transcript`` with EOS appended (tf-text's ``add_eos=True``)."""
    return np.asarray([*tokenizer.encode(transcript), tokenizer.eos_id()], np.int32)


def _write_index(directory: Path, split: str, rows: Iterable[tuple[str, int, int]]) -> None:
    with open(Path(directory) / f"{split}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "num_samples", "num_tokens"))
        writer.writerows(rows)


def write_split(directory: Path, split: str,
                utterances: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> int:
    """Writes ``(id, int16 audio, int32 targets)`` utterances and the split's index; returns
    how many were written."""
    folder = Path(directory) / split
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for utterance_id, audio, targets in utterances:
        np.save(folder / f"{utterance_id}_audio.npy", np.asarray(audio, np.int16))
        np.save(folder / f"{utterance_id}_targets.npy", np.asarray(targets, np.int32))
        rows.append((utterance_id, len(audio), len(targets)))
    _write_index(directory, split, rows)
    return len(rows)


def split_ids(directory: Path, split: str) -> list[str]:
    """The utterance ids of ``split`` in the index's order."""
    path = Path(directory) / f"{split}.csv"
    if not path.is_file():
        raise UserError(f"{path} is missing: prepare LibriSpeech into {Path(directory).parent} "
                        "first (algoperf datasets prepare librispeech)")
    with open(path, newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


def longest_utterance(directory: Path) -> int:
    """The most samples of any utterance of the prepared splits (their indexes' counts)."""
    longest = 0
    for split in SPLITS:
        with open(Path(directory) / f"{split}.csv", newline="") as f:
            longest = max([longest, *(int(row["num_samples"]) for row in csv.DictReader(f))])
    return longest


def is_synthetic(directory: Path) -> bool:
    """Whether the prepared data is ``write_synthetic``'s (its content manifest says so)."""
    try:
        return bool(content.read(Path(directory)).source.get("synthetic"))
    except UserError:  # no (readable) content manifest: not ours to call synthetic
        return False


def read_utterance(directory: Path, split: str, utterance_id: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The int16 audio and int32 targets of one utterance."""
    folder = Path(directory) / split
    return (np.load(folder / f"{utterance_id}_audio.npy"),
            np.load(folder / f"{utterance_id}_targets.npy"))


# Preparation from the official archives.

def parse_transcripts(text: str, origin: str) -> dict[str, str]:
    """A chapter's ``.trans.txt`` as {utterance id: transcript}, normalised as AlgoPerf's
    preprocessing does: each line stripped and split at its first space."""
    transcripts: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        utterance_id, _, transcript = line.strip().partition(" ")
        if not utterance_id:
            continue
        if not transcript or _UTTERANCE_ID.fullmatch(utterance_id) is None \
                or utterance_id in transcripts:
            raise UserError(f"line {number} of {origin} is not '<speaker>-<chapter>-<n> "
                            "<TRANSCRIPT>' with a new id; the archive is damaged or not "
                            "LibriSpeech's: download it again")
        transcripts[utterance_id] = transcript
    return transcripts


def tokenizer_transcripts(transcripts: Iterable[str],
                          max_characters: int = TOKENIZER_MAX_CHARACTERS) -> list[str]:
    """The transcripts AlgoPerf trains the tokenizer on: the first ones, in order, while
    their characters and a newline each add up to at most ``max_characters``."""
    chosen, total = [], 0
    for transcript in transcripts:
        total += len(transcript) + 1
        if total > max_characters:
            break
        chosen.append(transcript)
    return chosen


def utterance_order(utterance_id: str) -> tuple[int, ...]:
    """Sort key of ``<speaker>-<chapter>-<n>``: by speaker, chapter and number."""
    return tuple(int(part) for part in utterance_id.split("-"))


def decode_flac(data: bytes, origin: str) -> np.ndarray:
    """The int16 samples of a FLAC file, which must be LibriSpeech's 16 kHz mono 16-bit."""
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            form = (f.format, f.subtype, f.channels, f.samplerate)
            if form != ("FLAC", "PCM_16", 1, SAMPLE_RATE):
                raise UserError(f"{origin} is {f.format} {f.subtype}, {f.channels} channel(s) "
                                f"at {f.samplerate} Hz, not LibriSpeech's 16 kHz mono 16-bit "
                                "FLAC; the archive is not the official one")
            return f.read(dtype="int16")
    except soundfile.LibsndfileError as e:
        raise UserError(f"{origin} is not a readable FLAC file ({e}); the archive is damaged: "
                        "download it again") from None


def convert_chapter(folder: Path, utterances: list[tuple[str, bytes]],
                    origin: str) -> list[tuple[str, int]]:
    """In a worker: decodes a chapter's ``(id, FLAC bytes)`` utterances and writes those of at
    most ``MAX_AUDIO_SAMPLES`` samples as ``<id>_audio.npy`` into ``folder``; returns their
    ids and numbers of samples."""
    kept = []
    for utterance_id, data in utterances:
        samples = decode_flac(data, f"{origin}/{utterance_id}.flac")
        if len(samples) <= MAX_AUDIO_SAMPLES:
            np.save(folder / f"{utterance_id}_audio.npy", samples)
            kept.append((utterance_id, len(samples)))
    return kept


@dataclasses.dataclass
class _Chapter:
    transcripts: dict[str, str] | None = None
    flacs: dict[str, bytes] = dataclasses.field(default_factory=dict)


def _members(archive: tarfile.TarFile, origin: str) -> Iterator[tuple[str, bytes]]:
    """The regular files of a streamed archive, read whole, as (name, bytes)."""
    members = iter(archive)
    while True:
        try:
            member = next(members, None)
            if member is None:
                return
            data = archive.extractfile(member).read() if member.isfile() else None
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise UserError(f"{origin} is not a readable tar.gz archive ({e}); download it "
                            "again") from None
        if data is not None:
            yield member.name, data


def _chapters(archive: tarfile.TarFile, subset: str, origin: str
              ) -> Iterator[tuple[str, dict[str, str], dict[str, bytes]]]:
    """The chapters of one official archive, each as soon as its transcript and all its
    FLAC files have been read: ``(<speaker>/<chapter>, transcripts, FLAC bytes by id)``."""
    pending: dict[str, _Chapter] = {}
    finished: set[str] = set()
    for name, data in _members(archive, origin):
        parts = name.split("/")
        if parts[0] == ARCHIVE_ROOT and len(parts) == 2:
            continue  # README.TXT, SPEAKERS.TXT, CHAPTERS.TXT, ... beside the subset
        if len(parts) != 5 or parts[:2] != [ARCHIVE_ROOT, subset] or \
                not (parts[2].isdigit() and parts[3].isdigit()):
            raise UserError(f"{origin} holds {name!r}, not {ARCHIVE_ROOT}/{subset}/<speaker>/"
                            f"<chapter>/<file>: it is not the official {subset} archive")
        speaker, chapter, filename = parts[2:]
        key, stem = f"{speaker}/{chapter}", f"{speaker}-{chapter}"
        entry = pending.setdefault(key, _Chapter())
        if key in finished:
            raise UserError(f"{origin} holds {name!r} after the rest of its chapter; it is "
                            "not the official archive")
        if filename == f"{stem}.trans.txt" and entry.transcripts is None:
            try:
                entry.transcripts = parse_transcripts(data.decode("utf-8"), name)
            except UnicodeDecodeError:
                raise UserError(f"{name} in {origin} is not UTF-8 text; the archive is "
                                "damaged: download it again") from None
        elif filename.startswith(f"{stem}-") and filename.endswith(".flac"):
            entry.flacs[filename.removesuffix(".flac")] = data
        else:
            raise UserError(f"{origin} holds {name!r}, neither {stem}.trans.txt nor a "
                            f"{stem}-<n>.flac file: it is not the official archive")
        if entry.transcripts is None:
            continue
        unexpected = sorted(entry.flacs.keys() - entry.transcripts.keys())
        if unexpected:
            raise UserError(f"{origin} holds {unexpected[0]}.flac, which {stem}.trans.txt "
                            "does not transcribe: it is not the official archive")
        if len(entry.flacs) == len(entry.transcripts):
            del pending[key]
            finished.add(key)
            yield key, entry.transcripts, entry.flacs
    if pending:
        key, entry = next(iter(pending.items()))
        missing = ("its transcript" if entry.transcripts is None else
                   f"{len(entry.transcripts) - len(entry.flacs)} of its FLAC files")
        raise UserError(f"chapter {key} of {origin} lacks {missing}; the archive is incomplete: "
                        "download it again")


class _Journal:
    """The chapters of one archive already converted into the work folder: a header line
    naming the archive file, then one JSON line per chapter with its kept utterances. A header
    of another file (or another manifest hash) starts the journal afresh."""

    def __init__(self, path: Path, header: dict, folder: Path) -> None:
        self.done: dict[str, list[tuple[str, int]]] = {}
        lines = [json.dumps(header)]
        try:
            stored = path.read_text().splitlines()
        except FileNotFoundError:
            stored = []
        if stored and stored[0] == lines[0]:
            for line in stored[1:]:
                try:  # the last line of a killed run may be cut short
                    record = json.loads(line)
                except ValueError:
                    break
                kept = [(str(i), int(n)) for i, n in record["kept"]]
                if all((folder / f"{i}_audio.npy").is_file() for i, _ in kept):
                    self.done[record["chapter"]] = kept
                    lines.append(line)
        path.with_suffix(".partial").write_text("".join(f"{line}\n" for line in lines))
        os.replace(path.with_suffix(".partial"), path)
        self._file = open(path, "a")

    def add(self, chapter: str, kept: list[tuple[str, int]]) -> None:
        self._file.write(json.dumps({"chapter": chapter, "kept": kept}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _Workers:
    """Worker processes with a bounded number of chapters in flight (each holds its FLAC
    bytes); a finished chapter's ``done(result)`` runs in this process, in submission order."""

    def __init__(self, workers: int) -> None:
        # forkserver: a fork of a process that runs JAX threads can deadlock.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("forkserver"))
        self._limit = workers + 2
        self._pending: list[tuple[concurrent.futures.Future, Callable]] = []

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, done: Callable, fn: Callable, *args) -> None:
        while len(self._pending) >= self._limit:
            self._finish_first()
        self._pending.append((self._pool.submit(fn, *args), done))

    def _finish_first(self) -> None:
        future, done = self._pending.pop(0)
        done(future.result())

    def join(self) -> None:
        while self._pending:
            self._finish_first()


class _CountingReader(io.RawIOBase):
    """A file read once from start to end, reporting the bytes read (for progress)."""

    def __init__(self, f: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._f, self._on_bytes = f, on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer) or 0
        self._on_bytes(n)
        return n


class _Progress:
    """A rich bar per archive (compressed bytes read) on a terminal, and a line per archive
    converted, on stderr."""

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

    def archive(self, name: str, size: int) -> Callable[[int], None]:
        task = self._bars.add_task(f"  {name}", total=size)
        return lambda n: self._bars.advance(task, n)

    def line(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)


@dataclasses.dataclass(frozen=True)
class _Converted:
    """One archive read: every transcript (by id), and the kept utterances' sample counts."""

    transcripts: dict[str, str]
    kept: dict[str, int]


def _convert_archive(path: Path, subset: str, work: Path, sha256: str | None,
                     pool: _Workers, progress: _Progress) -> _Converted:
    """Streams one archive, decoding in ``pool`` the chapters its journal has no record of
    into ``work/<split>``; returns what it holds."""
    folder = work / SUBSETS[subset]
    stat = path.stat()
    header = {"archive": path.name, "sha256": sha256,
              "file": [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]}
    journal = _Journal(work / f"{subset}.journal", header, folder)
    transcripts: dict[str, str] = {}
    kept: dict[str, int] = {}

    def finished(chapter: str, result: list[tuple[str, int]]) -> None:
        journal.add(chapter, result)
        kept.update(result)

    try:
        with open(path, "rb", buffering=0) as f, tarfile.open(
                fileobj=io.BufferedReader(_CountingReader(f, progress.archive(
                    path.name, stat.st_size)), READ_CHUNK), mode="r|gz") as archive:
            for chapter, chapter_transcripts, flacs in _chapters(archive, subset, path.name):
                transcripts.update(chapter_transcripts)
                if chapter in journal.done:
                    kept.update(journal.done[chapter])
                    continue
                # AlgoPerf drops a long transcript before decoding its audio.
                utterances = [(i, flacs[i]) for i in sorted(chapter_transcripts)
                              if len(chapter_transcripts[i]) <= MAX_TRANSCRIPT_CHARACTERS]
                pool.submit(lambda result, chapter=chapter: finished(chapter, result),
                            convert_chapter, folder, utterances, f"{path.name}:{chapter}")
            pool.join()
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise UserError(f"{path} is not a readable tar.gz archive ({e}); download it "
                        "again") from None
    finally:
        journal.close()
    resumed = f", {len(journal.done):,} chapters converted before" if journal.done else ""
    progress.line(f"{path.name}: {len(transcripts):,} utterances, {len(kept):,} kept"
                  f"{resumed}")
    return _Converted(transcripts, kept)


def _require(raw_dir: Path, subset: str) -> Path:
    path = raw_dir / archive_name(subset)
    if not path.is_file():
        raise UserError(f"librispeech needs {path.name} in {raw_dir}: run `algoperf datasets "
                        "download librispeech`, or download it from https://www.openslr.org/12 "
                        "and pass --raw-dir to the folder holding it")
    return path


def _keep_only(folder: Path, ids: set[str]) -> None:
    """Removes from ``folder`` what is no kept utterance's audio (left by an earlier run)."""
    for path in folder.iterdir():
        if path.name.removesuffix("_audio.npy") not in ids:
            path.unlink()


def prepare(raw_dir: Path, out: Path, manifest: Manifest, workers: int | None = None,
            work: Path | None = None) -> dict:
    """Converts the six official archives in ``raw_dir`` into the prepared layout in ``out``,
    through ``work`` (default: ``.librispeech.work`` beside ``out``, i.e. in the data
    directory), which an interrupted run leaves for the next one to resume. For the built-in
    manifest, the utterances read and kept are checked against the published counts."""
    work = work or out.parent / f".{NAME}.work"
    paths = {subset: _require(raw_dir, subset) for subset in SUBSETS}
    hashes = {f.name: f.sha256 for f in manifest.files}
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    for split in SPLITS:
        (work / split).mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, int, str]]] = {split: [] for split in SPLITS}
    read: dict[str, int] = {}
    with _Progress() as progress, _Workers(workers) as pool:
        for subset, split in SUBSETS.items():
            converted = _convert_archive(paths[subset], subset, work,
                                         hashes.get(paths[subset].name), pool, progress)
            read[subset] = len(converted.transcripts)
            if manifest.builtin and read[subset] != PUBLISHED_UTTERANCES[subset]:
                raise UserError(f"{paths[subset].name} holds {read[subset]:,} utterances, the "
                                f"published count is {PUBLISHED_UTTERANCES[subset]:,}; it is "
                                "not the official archive: download it again")
            if subset == TOKENIZER_SUBSET:
                tokenizer_text = tokenizer_transcripts(
                    converted.transcripts[i]
                    for i in sorted(converted.transcripts, key=utterance_order))
            rows[split] += [(i, converted.kept[i], converted.transcripts[i])
                            for i in sorted(converted.kept, key=utterance_order)]
    counts = {split: len(rows[split]) for split in SPLITS}
    if manifest.builtin and counts != OFFICIAL_COUNTS:
        raise UserError(f"the length filter kept {counts} utterances, AlgoPerf's data has "
                        f"{OFFICIAL_COUNTS}; this is a bug in algoperf's preparation: report it")
    (out / TOKENIZER_FILE).write_bytes(train_tokenizer(tokenizer_text))
    tokenizer = load_tokenizer(out)
    for split in SPLITS:
        _keep_only(work / split, {i for i, _, _ in rows[split]})
        os.replace(work / split, out / split)
        index = []
        for utterance_id, num_samples, transcript in rows[split]:
            targets = tokenize(tokenizer, transcript)
            np.save(out / split / f"{utterance_id}_targets.npy", targets)
            index.append((utterance_id, num_samples, len(targets)))
        _write_index(out, split, index)
    shutil.rmtree(work)
    return {"examples": counts, "utterances_read": read,
            "tokenizer": {"trained_on": TOKENIZER_SUBSET, "transcripts": len(tokenizer_text),
                          "vocab_size": VOCAB_SIZE}}


# Synthetic data in the prepared layout.

def _synthetic_transcripts(count: int, random_state: np.random.RandomState,
                           max_words: int = 12) -> list[str]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'"))
    words = ["".join(random_state.choice(letters, random_state.randint(2, 9)))
             for _ in range(3000)]
    return [" ".join(random_state.choice(words, random_state.randint(1, max_words + 1)))
            for _ in range(count)]


def write_synthetic(data_dir: Path, num_train: int = 64, num_test: int = 16,
                    max_samples: int = 16_000) -> Path:
    """Writes synthetic LibriSpeech into ``data_dir/librispeech`` in the prepared layout:
    ``num_train`` training and ``num_test`` validation and test utterances of 3/4 to all of
    ``max_samples`` samples of noise with tones, random one-word transcripts tokenised by a
    1,024-piece unigram model trained on other random transcripts (short enough for a CTC
    alignment: 0.75 s of audio give the models 18 output frames); returns the folder."""
    directory = Path(data_dir) / NAME
    directory.mkdir(parents=True, exist_ok=True)
    random_state = np.random.RandomState(0)
    tokenizer_bytes = train_tokenizer(_synthetic_transcripts(3000, random_state))
    (directory / TOKENIZER_FILE).write_bytes(tokenizer_bytes)
    tokenizer = load_tokenizer(directory)
    for split, count in (("train", num_train), ("validation", num_test), ("test", num_test)):
        transcripts = _synthetic_transcripts(count, random_state, max_words=1)

        def utterances(split=split, transcripts=transcripts):
            for index, text in enumerate(transcripts):
                length = random_state.randint(3 * max_samples // 4, max_samples + 1)
                t = np.arange(length) / SAMPLE_RATE
                tone = np.sin(2 * np.pi * random_state.uniform(100, 3000) * t)
                audio = 3000 * tone + random_state.normal(0, 500, length)
                ids = tokenize(tokenizer, text)[:MAX_TARGET_TOKENS]
                yield f"{split}-{index:05d}", np.clip(audio, -32768, 32767), ids

        write_split(directory, split, utterances())
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
