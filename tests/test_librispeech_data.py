"""LibriSpeech's prepared layout and the speech input pipeline: what the synthetic writer
writes reads back, batches are padded as AlgoPerf pads them, seeds fix the order, and
utterances beyond the length limits are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from algoperf.datasets import content
from algoperf.datasets import librispeech as librispeech_data
from algoperf.errors import UserError
from algoperf.workloads.librispeech_conformer import input_pipeline


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return librispeech_data.write_synthetic(tmp_path_factory.mktemp("ls"), num_train=12,
                                            num_test=5, max_samples=8_000)


def test_synthetic_layout_has_every_split_its_index_tokenizer_and_manifest(directory):
    for split, count in (("train", 12), ("validation", 5), ("test", 5)):
        ids = librispeech_data.split_ids(directory, split)
        assert len(ids) == count
        audio, targets = librispeech_data.read_utterance(directory, split, ids[0])
        assert audio.dtype == np.int16 and 6_000 <= len(audio) <= 8_000
        assert targets.dtype == np.int32
    tokenizer = librispeech_data.load_tokenizer(directory)
    assert tokenizer.get_piece_size() == librispeech_data.VOCAB_SIZE
    assert (directory / content.MANIFEST_NAME).is_file()


def test_targets_are_the_transcript_ids_with_eos_appended(directory):
    tokenizer = librispeech_data.load_tokenizer(directory)
    ids = librispeech_data.tokenize(tokenizer, "HELLO WORLD")
    assert ids[-1] == tokenizer.eos_id() and tokenizer.decode(ids.tolist()) == "HELLO WORLD"


def test_eval_batches_pad_audio_targets_and_the_last_rows_as_algoperf(directory):
    ids = librispeech_data.split_ids(directory, "validation")
    batches = list(input_pipeline.eval_batches(directory, "validation", ids, 4, 8_000, False))
    assert len(batches) == 2
    last = batches[1]
    audio, audio_paddings = last["inputs"]
    targets, target_paddings = last["targets"]
    assert audio.shape == (4, 8_000) and targets.shape == (4, 256)
    np.testing.assert_array_equal(last["weights"], [1, 0, 0, 0])
    samples, tokens = librispeech_data.read_utterance(directory, "validation", ids[4])
    np.testing.assert_array_equal(audio[0, :len(samples)], samples)
    assert audio_paddings[0, :len(samples)].sum() == 0 and audio_paddings[0, len(samples):].all()
    np.testing.assert_array_equal(targets[0, :len(tokens)], tokens)
    assert target_paddings[0, len(tokens):].all() and not targets[0, len(tokens):].any()
    assert audio_paddings[1:].all() and target_paddings[1:].all()  # padding rows


def test_one_seed_gives_the_same_training_batches_and_another_seed_others(directory):
    ids = librispeech_data.split_ids(directory, "train")

    def first(seed):
        return next(input_pipeline.train_batches(directory, ids, 4, seed, 8_000))

    a, b, c = first(3), first(3), first(4)
    np.testing.assert_array_equal(a["inputs"][0], b["inputs"][0])
    assert not np.array_equal(a["inputs"][0], c["inputs"][0])


def test_an_utterance_longer_than_the_padded_length_is_refused_in_one_line(directory):
    ids = librispeech_data.split_ids(directory, "train")
    with pytest.raises(UserError, match="at most 1000"):
        next(input_pipeline.train_batches(directory, ids, 4, 0, 1_000))


def test_a_missing_dataset_says_to_prepare_it(tmp_path):
    with pytest.raises(UserError, match="prepare"):
        librispeech_data.split_ids(tmp_path / "librispeech", "train")


def test_synthetic_data_pads_to_its_longest_utterance_not_to_twenty_seconds(directory):
    from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch.workload import (
        LibriSpeechConformerWorkload,
    )

    workload = LibriSpeechConformerWorkload()
    assert workload.audio_length == librispeech_data.MAX_AUDIO_SAMPLES
    longest = librispeech_data.longest_utterance(directory)
    assert workload._padded_length(directory) == longest <= 8_000
