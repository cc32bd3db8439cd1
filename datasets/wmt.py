"""WMT German-English for the wmt workload: SentencePiece ids on disk, one ragged array per side.

AlgoPerf's wmt trains on WMT17 de-en (TFDS ``wmt17_translate/de-en``, 5,906,184 sentence
pairs) and evaluates on WMT14 de-en's validation (newstest2013, 3,000 pairs) and test
(newstest2014, 3,003 pairs). Its tokeniser is a SentencePiece unigram model of 32,000 pieces
(character coverage 1.0, SentencePiece's other defaults: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2)
trained on the first 10^7 characters of the training split, German and English lines
alternating; every sentence is encoded with ``</s>`` appended and no ``<s>``. Id 0 doubles as
padding, as in AlgoPerf. The prepared layout holds those ids, so training never tokenises:

- ``sentencepiece.model``: the tokeniser (the workload decodes translations with it);
- ``<split>.<side>.ids.npy``: the split's sentences of one side (``inputs``, German;
  ``targets``, English) concatenated, uint16 (32,000 ids fit);
- ``<split>.<side>.offsets.npy``: int64, sentence ``i`` is ``ids[offsets[i]:offsets[i + 1]]``;
- ``meta.json``: ``{"sentences": {split: count}, "vocab_size": ...}``.

``prepare`` builds the layout from the official archives TFDS's builders download (europarl
v7, commoncrawl, news-commentary v12 and rapid 2016 for train; newstest2013 and the SGML
newstest2014 from the WMT19 ``dev.tgz``), reading them as TFDS reads them and in the order
TFDS stores them, so the tokeniser sees AlgoPerf's first 10^7 characters. ``prepare_pairs``
writes the layout from sentence pairs of each split (training the tokeniser as AlgoPerf does);
``write_synthetic`` writes it from made-up sentence pairs for the tests and ``algoperf
workloads check``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.datasets.manifest import Manifest
from algoperf.errors import UserError

NAME = "wmt"
SPLITS = ("train", "validation", "test")
SIDES = ("inputs", "targets")  # German source, English target
VOCAB_SIZE = 32_000
PAD_ID = 0  # also SentencePiece's <unk>, as in AlgoPerf
EOS_ID = 2
MAX_CORPUS_CHARS = 10 ** 7  # characters of training text the tokeniser is trained on
MODEL_FILE = "sentencepiece.model"
META_FILE = "meta.json"
OFFICIAL_SENTENCES = {"train": 5_906_184, "validation": 3_000, "test": 3_003}
DTYPE = np.dtype("<u2")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown WMT split {split!r}; expected one of {', '.join(SPLITS)}")


def _missing(directory: Path) -> UserError:
    return UserError(f"WMT is not prepared in {directory}: run `algoperf datasets download "
                     "wmt` (or write synthetic data with algoperf.datasets.wmt.write_synthetic)")


def train_tokenizer(texts: Iterable[str], model_path: Path, vocab_size: int = VOCAB_SIZE,
                    **options: object) -> Path:
    """Trains AlgoPerf's SentencePiece model on the lines ``texts`` (unigram, character
    coverage 1.0, SentencePiece's defaults otherwise) and writes it to ``model_path``.
    ``options`` go to the trainer as they are (the synthetic writer's tiny corpus needs
    ``hard_vocab_limit=False``)."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus.txt"
        corpus.write_text("".join(f"{line}\n" for line in texts), encoding="utf-8")
        prefix = Path(scratch) / "sp"
        spm.SentencePieceTrainer.train(input=str(corpus), vocab_size=vocab_size,
                                       character_coverage=1.0, model_prefix=str(prefix),
                                       model_type="unigram", minloglevel=2, **options)
        model_path.write_bytes(prefix.with_suffix(".model").read_bytes())
    return model_path


def tokenizer_corpus(pairs: Iterable[tuple[str, str]],
                     max_chars: int = MAX_CORPUS_CHARS) -> list[str]:
    """The tokeniser's training lines: German then English of each pair, from the first pair
    on, until the lines (newlines counted, UTF-8 bytes) reach ``max_chars``, as AlgoPerf
    dumps its training split (a pair begun is finished)."""
    lines, count = [], 0
    for source, target in pairs:
        if count >= max_chars:
            break
        for line in (source, target):
            lines.append(line)
            count += len(line.encode("utf-8")) + 1
    return lines


def load_tokenizer(directory: Path | str):
    """The prepared SentencePiece model (``sentencepiece.SentencePieceProcessor``)."""
    import sentencepiece as spm

    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise _missing(Path(directory))
    return spm.SentencePieceProcessor(model_file=str(path))


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's ids with ``</s>`` appended, as AlgoPerf's tokeniser encodes sentences."""
    return [ids + [EOS_ID] for ids in tokenizer.encode(texts)]


def _write_side(directory: Path, split: str, side: str, tokenizer, texts: list[str]) -> None:
    """Encodes ``texts`` ``_ENCODE_CHUNK`` at a time (a few million sentences' ids as Python
    lists would take gigabytes) and writes their ids and offsets."""
    ids_parts, lengths = [], []
    for start in range(0, len(texts), _ENCODE_CHUNK):
        sentences = encode(tokenizer, texts[start:start + _ENCODE_CHUNK])
        lengths.append(np.fromiter((len(s) for s in sentences), np.int64, len(sentences)))
        chunk = np.fromiter((i for s in sentences for i in s), np.int64, int(lengths[-1].sum()))
        if chunk.size and chunk.max() > np.iinfo(DTYPE).max:
            raise UserError(f"token ids up to {chunk.max()} do not fit WMT's uint16 layout")
        ids_parts.append(chunk.astype(DTYPE))
    sizes = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, DTYPE)
    np.save(directory / f"{split}.{side}.ids.npy", ids)
    np.save(directory / f"{split}.{side}.offsets.npy", offsets)


def _stage_key(**parts: object) -> str:
    """What a stage of the preparation was computed from, as one line to compare."""
    return json.dumps(parts, sort_keys=True)


def _texts_sha256(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _stage_done(work: Path, stage: str, key: str) -> bool:
    marker = work / f"{stage}.done"
    return marker.is_file() and marker.read_text() == key


def _finish_stage(work: Path, stage: str, key: str) -> None:
    (work / f"{stage}.done").write_text(key)


def prepare_pairs(splits: Mapping[str, list[tuple[str, str]]], out: Path,
                  vocab_size: int = VOCAB_SIZE, max_corpus_chars: int = MAX_CORPUS_CHARS,
                  work: Path | None = None, echo: Callable[[str], None] = lambda _: None,
                  **tokenizer_options: object) -> dict:
    """Writes the prepared layout into ``out`` from each split's (German, English) pairs:
    trains the tokeniser on the training pairs' first ``max_corpus_chars`` characters,
    encodes every split and writes ``meta.json``; returns the sentence counts.

    With ``work``, each stage (the tokeniser, then each split's side) is written there with a
    marker of what it was computed from (the corpus's and the texts' sha256, the options), and
    a later call with the same inputs keeps it: an interrupted preparation resumes after its
    last finished stage. The files move into ``out`` at the end and ``work`` is removed."""
    if set(splits) != set(SPLITS):
        raise ValueError(f"WMT needs the splits {', '.join(SPLITS)}, got {sorted(splits)}")
    out.mkdir(parents=True, exist_ok=True)
    stage_dir = work or out
    stage_dir.mkdir(parents=True, exist_ok=True)
    corpus = tokenizer_corpus(splits["train"], max_corpus_chars)
    model_key = _stage_key(corpus=_texts_sha256(corpus), vocab_size=vocab_size,
                           options={k: str(v) for k, v in tokenizer_options.items()})
    if work is not None and _stage_done(work, "tokenizer", model_key):
        echo(f"the SentencePiece model from an earlier run (in {work})")
    else:
        train_tokenizer(corpus, stage_dir / MODEL_FILE, vocab_size, **tokenizer_options)
        if work is not None:
            _finish_stage(work, "tokenizer", model_key)
    del corpus
    tokenizer = load_tokenizer(stage_dir)
    counts = {}
    for split in SPLITS:
        pairs = splits[split]
        for index, side in enumerate(SIDES):
            texts = [pair[index] for pair in pairs]
            key = _stage_key(model=model_key, texts=_texts_sha256(texts), count=len(texts))
            stage = f"{split}.{side}"
            if work is not None and _stage_done(work, stage, key):
                echo(f"{stage}: encoded by an earlier run")
                continue
            _write_side(stage_dir, split, side, tokenizer, texts)
            if work is not None:
                _finish_stage(work, stage, key)
                echo(f"{stage}: {len(texts):,} sentences encoded")
        counts[split] = len(pairs)
    if work is not None:
        for file in work.iterdir():
            if file.suffix != ".done":  # the stage records stay behind, with the folder
                os.replace(file, out / file.name)
        shutil.rmtree(work)
    (out / META_FILE).write_text(json.dumps({"sentences": counts, "vocab_size": vocab_size},
                                            indent=1) + "\n")
    return {"sentences": counts}


def read_side(directory: Path | str, split: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, offsets)`` of one side of a split, memory-mapped read-only."""
    _check_split(split)
    directory = Path(directory)
    paths = [directory / f"{split}.{side}.{part}.npy" for part in ("ids", "offsets")]
    if not all(path.is_file() for path in paths):
        raise _missing(directory)
    ids, offsets = (np.load(path, mmap_mode="r") for path in paths)
    return ids, offsets


def num_sentences(directory: Path | str) -> dict[str, int]:
    """The prepared sentence counts per split."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise _missing(Path(directory))
    return json.loads(path.read_text())["sentences"]


# Preparation from the official archives, as TFDS's wmt14/wmt17 builders read them.

@dataclasses.dataclass(frozen=True)
class Subset:
    """One TFDS subset of de-en: its split, archive and the two members (German, English)."""

    name: str
    split: str
    archive: str
    members: tuple[str, str]


# TFDS's de-en subsets of wmt17_translate (train) and wmt14_translate (validation, test), with
# the archives its checksum files register (built-in manifest) and the member paths it reads.
SUBSETS = (
    Subset("europarl_v7", "train", "training-parallel-europarl-v7.tgz",
           ("training/europarl-v7.de-en.de", "training/europarl-v7.de-en.en")),
    Subset("commoncrawl", "train", "training-parallel-commoncrawl.tgz",
           ("commoncrawl.de-en.de", "commoncrawl.de-en.en")),
    Subset("newscommentary_v12", "train", "training-parallel-nc-v12.tgz",
           ("training/news-commentary-v12.de-en.de", "training/news-commentary-v12.de-en.en")),
    Subset("rapid_2016", "train", "rapid2016.tgz", ("rapid2016.de-en.de", "rapid2016.de-en.en")),
    Subset("newstest2013", "validation", "dev.tgz", ("dev/newstest2013.de",
                                                     "dev/newstest2013.en")),
    Subset("newstest2014", "test", "dev.tgz", ("dev/newstest2014-deen-src.de.sgm",
                                               "dev/newstest2014-deen-ref.en.sgm")),
)
_SEGMENT = re.compile(r"<seg id=\"\d+\">(.*)</seg>")  # TFDS's pattern (SGML read line by line)
_ENCODE_CHUNK = 100_000  # sentences encoded at a time


def parse_sentences(data: bytes, member: str) -> list[str]:
    """A member's sentences as TFDS reads them: an SGML file's ``<seg id="N">...</seg>``
    lines (in text mode, so ``\\r\\n`` ends a line), any other file split at ``\\n`` only
    (a ``\\r`` stays in its sentence), nothing stripped."""
    try:
        if member.endswith(".sgm"):
            text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
            return [m.group(1) for line in text if (m := _SEGMENT.match(line))]
        return [line.decode("utf-8") for line in data.split(b"\n")]
    except UnicodeDecodeError as e:
        raise UserError(f"{member} is not UTF-8 text ({e.reason} at byte {e.start}); the "
                        "archive is damaged: download it again") from None


def subset_pairs(subset: Subset, german: list[str], english: list[str]
                 ) -> list[tuple[str, tuple[str, str]]]:
    """``(key, (German, English))`` of a subset as TFDS generates them: line by line, the key
    ``<subset>/0/<line>``, pairs with an empty side left out."""
    if len(german) != len(english):
        raise UserError(f"{subset.archive}: {subset.members[0]} has {len(german):,} lines and "
                        f"{subset.members[1]} {len(english):,}; the archive is damaged or not "
                        "the official one: download it again")
    return [(f"{subset.name}/0/{line}", (de, en))
            for line, (de, en) in enumerate(zip(german, english, strict=True)) if de and en]


def tfds_order(split: str, examples: list[tuple[str, tuple[str, str]]]
               ) -> list[tuple[str, str]]:
    """The examples in the order TFDS stores (and AlgoPerf reads) them: by the md5 of the split
    name followed by the key (TFDS's shuffler, its ``Hasher(salt=split)``)."""
    salted = hashlib.md5(split.encode("utf-8"))

    def order(example: tuple[str, tuple[str, str]]) -> bytes:
        digest = salted.copy()
        digest.update(example[0].encode("utf-8"))
        return digest.digest()

    return [pair for _, pair in sorted(examples, key=order)]


def read_members(path: Path, members: set[str]) -> dict[str, bytes]:
    """The named members of a .tgz archive, streamed once; UserError if any is missing."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|gz") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if name in members and member.isfile():
                    found[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path} is not a readable .tgz archive ({e}); download it "
                        "again") from None
    missing = sorted(members - found.keys())
    if missing:
        raise UserError(f"{path} holds no {', '.join(missing)}: it is not the official "
                        f"{path.name}; download it again")
    return found


def read_splits(raw_dir: Path, echo: Callable[[str], None] = lambda _: None
                ) -> dict[str, list[tuple[str, str]]]:
    """Every split's (German, English) pairs from the official archives in ``raw_dir``, in
    TFDS's order."""
    examples: dict[str, list] = {split: [] for split in SPLITS}
    archives: dict[str, list[Subset]] = {}
    for subset in SUBSETS:
        archives.setdefault(subset.archive, []).append(subset)
    for archive, subsets in archives.items():
        path = raw_dir / archive
        if not path.is_file():
            raise UserError(f"wmt needs {archive} in {raw_dir}: run `algoperf datasets download "
                            "wmt`, or download it from statmt.org (docs/datasets.md lists the "
                            "URLs) and pass the folder holding it as --raw-dir")
        members = read_members(path, {m for s in subsets for m in s.members})
        for subset in subsets:
            german, english = (parse_sentences(members[m], m) for m in subset.members)
            pairs = subset_pairs(subset, german, english)
            examples[subset.split] += pairs
            echo(f"{archive}: {subset.name}, {len(pairs):,} pairs ({subset.split})")
        del members
    return {split: tfds_order(split, examples[split]) for split in SPLITS}


def prepare(raw_dir: Path, out: Path, manifest: Manifest, work: Path | None = None) -> dict:
    """Prepares WMT into ``out`` from the official archives in ``raw_dir``: the splits as TFDS
    builds them, the tokeniser trained as AlgoPerf trains it. With the built-in manifest the
    pair counts are checked against TFDS's; any other manifest (a subset, the tests) trains the
    32,000 pieces as a soft limit (``hard_vocab_limit=false``). The tokeniser and each encoded
    side go through ``work`` (default ``.wmt.work`` beside ``out``), which an interrupted run
    leaves for the next one to resume from (``prepare_pairs``)."""
    from algoperf import terminal

    console = terminal.console(stderr=True)
    splits = read_splits(raw_dir, lambda text: console.print(f"  {text}", highlight=False))
    counts = {split: len(pairs) for split, pairs in splits.items()}
    if manifest.builtin and counts != OFFICIAL_SENTENCES:
        raise UserError(f"the archives hold {counts} pairs, TFDS's wmt17/wmt14 de-en have "
                        f"{OFFICIAL_SENTENCES}; they are not the official archives")
    console.print(f"  training the {VOCAB_SIZE:,}-piece SentencePiece model, encoding "
                  f"{sum(counts.values()):,} pairs", highlight=False)
    options = {} if manifest.builtin else {"hard_vocab_limit": False}
    result = prepare_pairs(splits, out, work=work or out.parent / f".{NAME}.work",
                           echo=lambda text: console.print(f"  {text}", highlight=False),
                           **options)
    return {**result, "subsets": [s.name for s in SUBSETS]}


# Synthetic data: a made-up lexicon translated word by word, so the pairs have structure.
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _lexicon(random_state: np.random.RandomState, size: int) -> list[str]:
    return ["".join(random_state.choice(list(_LETTERS), random_state.randint(2, 7)))
            for _ in range(size)]


def write_synthetic(data_dir: Path | str, num_train: int = 64, num_test: int = 16,
                    seed: int = 0, max_words: int = 6) -> Path:
    """Writes a synthetic WMT into ``data_dir/wmt`` in the prepared layout: ``num_train``
    training pairs and ``num_test`` pairs in each of validation and test, sentences of 1 to
    ``max_words`` words of a 40-word made-up lexicon whose 'English' is a word-by-word
    mapping of its 'German', a SentencePiece unigram model of up to 64 pieces trained on them
    as the real one is, and the content manifest; returns the folder."""
    directory = Path(data_dir) / NAME
    random_state = np.random.RandomState(seed)
    german, english = _lexicon(random_state, 40), _lexicon(random_state, 40)

    def pairs(count: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(count):
            words = random_state.randint(0, len(german), random_state.randint(1, max_words + 1))
            out.append((" ".join(german[w] for w in words),
                        " ".join(english[w] for w in words)))
        return out

    splits = {"train": pairs(num_train), "validation": pairs(num_test),
              "test": pairs(num_test)}
    prepare_pairs(splits, directory, vocab_size=64, hard_vocab_limit=False)
    content.write(directory, content.scan(directory, NAME, {"synthetic": True}))
    return directory
