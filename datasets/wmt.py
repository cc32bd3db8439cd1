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

``prepare_pairs`` writes the layout from sentence pairs of each split (training the tokeniser
as AlgoPerf does); ``write_synthetic`` writes it from made-up sentence pairs for the tests and
``algoperf workloads check``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from algoperf.datasets import content
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


def _write_side(directory: Path, split: str, side: str, sentences: list[list[int]]) -> None:
    lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.fromiter((i for s in sentences for i in s), np.int64, int(offsets[-1]))
    if ids.size and ids.max() > np.iinfo(DTYPE).max:
        raise UserError(f"token ids up to {ids.max()} do not fit WMT's uint16 layout")
    np.save(directory / f"{split}.{side}.ids.npy", ids.astype(DTYPE))
    np.save(directory / f"{split}.{side}.offsets.npy", offsets)


def prepare_pairs(splits: Mapping[str, list[tuple[str, str]]], out: Path,
                  vocab_size: int = VOCAB_SIZE, max_corpus_chars: int = MAX_CORPUS_CHARS,
                  **tokenizer_options: object) -> dict:
    """Writes the prepared layout into ``out`` from each split's (German, English) pairs:
    trains the tokeniser on the training pairs' first ``max_corpus_chars`` characters,
    encodes every split and writes ``meta.json``; returns the sentence counts."""
    if set(splits) != set(SPLITS):
        raise ValueError(f"WMT needs the splits {', '.join(SPLITS)}, got {sorted(splits)}")
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(tokenizer_corpus(splits["train"], max_corpus_chars), out / MODEL_FILE,
                    vocab_size, **tokenizer_options)
    tokenizer = load_tokenizer(out)
    counts = {}
    for split in SPLITS:
        pairs = splits[split]
        for index, side in enumerate(SIDES):
            _write_side(out, split, side, encode(tokenizer, [pair[index] for pair in pairs]))
        counts[split] = len(pairs)
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
