"""The speech workloads' loss and metrics: CTC in both frameworks, greedy CTC decoding, WER
(checked against jiwer) and SpecAugment's draws (bit-identical across frameworks)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jiwer
import numpy as np
import pytest
import torch

from algoperf import random_utils
from algoperf.workloads.librispeech_conformer import frontend, metrics, spec_augment
from algoperf.workloads.librispeech_conformer.librispeech_conformer_jax import models as jax_models
from algoperf.workloads.librispeech_conformer.librispeech_conformer_jax.workload import (
    ctc_loss as jax_ctc_loss,
)
from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch import (
    models as torch_models,
)
from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch.workload import (
    ctc_loss as torch_ctc_loss,
)

REFERENCES = ["the cat sat on the mat", "a quick brown fox", "hello world", "speech is hard"]
HYPOTHESES = ["the cat sat on mat", "a quick brown fox jumps", "hello word", "peach is hard too"]


def test_corpus_wer_equals_jiwers_wer_over_the_whole_split():
    assert metrics.corpus_wer(HYPOTHESES, REFERENCES) == pytest.approx(
        jiwer.wer(REFERENCES, HYPOTHESES), abs=1e-12)


def test_word_errors_sum_jiwers_substitutions_deletions_insertions():
    for hypothesis, reference in zip(HYPOTHESES, REFERENCES, strict=True):
        out = jiwer.process_words(reference, hypothesis)
        assert metrics.word_edit_distance(hypothesis.split(), reference.split()) == \
            out.substitutions + out.deletions + out.insertions


def test_greedy_decode_collapses_repeats_then_drops_blanks_and_padded_frames():
    frames = np.array([[0, 5, 5, 0, 5, 7, 7, 0, 9, 9],
                       [3, 3, 3, 0, 0, 4, 0, 0, 8, 8]])
    paddings = np.zeros_like(frames, dtype=np.float32)
    paddings[1, 7:] = 1  # the 8s are padding
    assert metrics.greedy_decode(frames, paddings) == [[5, 5, 7, 9], [3, 4]]


def _ctc_inputs(seed: int = 0):
    rs = np.random.RandomState(seed)
    batch, frames, vocab, labels = 4, 12, 6, 5
    logits = rs.normal(size=(batch, frames, vocab)).astype(np.float32) * 2
    logit_paddings = np.zeros((batch, frames), np.float32)
    logit_paddings[1, 9:] = 1
    logit_paddings[3, 7:] = 1
    targets = rs.randint(1, vocab, size=(batch, labels)).astype(np.int32)
    target_paddings = np.zeros((batch, labels), np.float32)
    target_paddings[0, 3:] = 1
    target_paddings[2, 1:] = 1
    targets[target_paddings > 0] = 0
    return logits, logit_paddings, targets, target_paddings


def test_ctc_loss_is_the_same_in_jax_and_pytorch_with_paddings_and_a_mask():
    logits, logit_paddings, targets, target_paddings = _ctc_inputs()
    mask = np.array([1, 1, 0, 1], np.float32)
    jax_out = jax_ctc_loss((jnp.asarray(targets), jnp.asarray(target_paddings)),
                           (jnp.asarray(logits), jnp.asarray(logit_paddings)), jnp.asarray(mask))
    torch_out = torch_ctc_loss((torch.from_numpy(targets), torch.from_numpy(target_paddings)),
                               (torch.from_numpy(logits), torch.from_numpy(logit_paddings)),
                               torch.from_numpy(mask))
    np.testing.assert_allclose(np.asarray(jax_out["per_example"]),
                               torch_out["per_example"].numpy(), rtol=1e-5)
    assert np.asarray(jax_out["per_example"])[2] == 0
    # Normalised by target tokens of the unmasked utterances: 3 + 5 + 5.
    assert float(jax_out["n_valid_examples"]) == float(torch_out["n_valid_examples"]) == 13


def test_ctc_loss_of_one_label_over_one_frame_is_its_negative_log_probability():
    logits = np.log(np.array([[[0.2, 0.5, 0.3]]], np.float32))
    out = jax_ctc_loss((jnp.array([[1]]), jnp.zeros((1, 1))), (jnp.asarray(logits),
                                                               jnp.zeros((1, 1))))
    assert float(out["summed"]) == pytest.approx(-np.log(0.5), rel=1e-5)


def test_spec_augment_draws_are_jaxs_uniforms_bit_for_bit():
    key = np.asarray(random_utils.PRNGKey(11)).astype(np.uint32)
    ours = spec_augment.draws(key, 3, 10, 2)
    keys = jax.random.split(jnp.asarray(key), 4)
    theirs = [jax.random.uniform(k, shape) for k, shape in
              zip(keys, [(3, 10), (3, 10), (3, 2), (3, 2)], strict=True)]
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_spec_augment_masks_the_same_frames_and_bins_in_both_frameworks():
    features = np.ones((3, 200, frontend.NUM_MEL_BINS), np.float32)
    paddings = np.zeros((3, 200), np.float32)
    paddings[1, 120:] = 1
    key = np.asarray(random_utils.PRNGKey(5)).astype(np.uint32)
    augment = jax.jit(jax_models.spec_augment, static_argnums=0)  # op by op is slow
    jax_out = np.asarray(augment(jax_models.ConformerConfig(), jnp.asarray(features),
                                 jnp.asarray(paddings), jnp.asarray(key)))
    torch_out = torch_models.spec_augment(torch_models.ConformerConfig(),
                                          torch.from_numpy(features),
                                          torch.from_numpy(paddings), key).numpy()
    np.testing.assert_array_equal(jax_out, torch_out)
    masked_bins = (jax_out == 0).all(axis=1).sum(axis=-1)
    assert 0 < masked_bins.max() <= 2 * 27  # two frequency masks of at most 27 bins
    masked_frames = (jax_out == 0).all(axis=2).sum(axis=-1)
    assert masked_frames[1] <= 10 * int(0.05 * 120)  # ten masks of at most 5% of 120 frames


def test_front_end_frames_twenty_seconds_into_1998_frames_padded_where_all_audio_is():
    assert frontend.num_frames(320_000) == 1998
    audio = np.random.RandomState(0).normal(0, 3000, (2, 16_000)).astype(np.float32)
    paddings = np.zeros_like(audio)
    paddings[1, 8_000:] = 1
    features, frame_paddings = jax.jit(jax_models.log_mel)(jnp.asarray(audio),
                                                           jnp.asarray(paddings))
    assert features.shape == (2, 98, 80)
    # A frame is padding only when all its 401 samples are (a sliding minimum, AlgoPerf's):
    # frames starting before sample 8,000 are real, 50 of them.
    assert np.asarray(frame_paddings)[1].tolist() == [0.0] * 50 + [1.0] * 48
    torch_features, torch_paddings = torch_models.LogMelFrontend()(torch.from_numpy(audio),
                                                                   torch.from_numpy(paddings))
    np.testing.assert_allclose(np.asarray(features), torch_features.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(np.asarray(frame_paddings), torch_paddings.numpy())


def test_mel_filter_bank_has_80_triangles_between_125_and_7600_hz():
    weights = frontend.mel_weights()
    assert weights.shape == (257, 80)
    hertz = np.linspace(0, 8000, 257)
    covered = hertz[weights.sum(axis=1) > 0]
    assert covered.min() > 125 and covered.max() < 7600
    assert np.all(weights.argmax(axis=0)[1:] >= weights.argmax(axis=0)[:-1])
