"""LibriSpeech (OpenSLR 12) for the speech workloads: one ``.npy`` pair per utterance.

The prepared layout, ``<data_dir>/librispeech/``, is the per-utterance layout AlgoPerf's
``librispeech_preprocess.py`` writes, split for split:

- ``<split>.csv``: one row per utterance (``id,num_samples,num_tokens``), in order; the
  splits are ``train`` (train-clean-100, train-clean-360 and train-other-500), ``validation``
  (dev-clean and dev-other) and ``test`` (test-clean);
- ``<split>/<id>_audio.npy``: the 16 kHz samples at int16 scale (int16 here; AlgoPerf stores
  the same values as int64);
- ``<split>/<id>_targets.npy``: int32 SentencePiece ids of the transcript, EOS appended;
- ``spm_model.model``: the SentencePiece unigram model of 1,024 pieces the ids come from
  (AlgoPerf names its copy ``spm_model.vocab``).

AlgoPerf keeps utterances of at most 320,000 samples (20 s) whose transcript has at most 256
characters; the workloads pad audio to 320,000 samples and targets to 256 ids.
``write_synthetic`` writes the same layout with synthetic speech-like noise and random
transcripts (its own small tokenizer) for ``algoperf workloads check`` and the tests.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from algoperf.datasets import content
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


def train_tokenizer(transcripts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> bytes:
    """A SentencePiece unigram model (character coverage 1.0, as AlgoPerf's) trained on
    ``transcripts``, as the bytes of its ``.model`` file."""
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
    with open(Path(directory) / f"{split}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "num_samples", "num_tokens"))
        writer.writerows(rows)
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
