"""wmt's own pieces: the prepared layout and its tokeniser, the length filter and packing, beam
search, and the decoding caches of both models (on tiny configurations of the same code)."""

from __future__ import annotations

import copy
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentencepiece import sentencepiece_model_pb2

from algoperf.datasets import wmt as wmt_data
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.wmt import decode, input_pipeline, parity
from algoperf.workloads.wmt.wmt_jax import models as jax_models
from algoperf.workloads.wmt.wmt_pytorch import models as torch_models

TINY = dict(vocab_size=11, width=16, num_heads=2, num_layers=2, mlp_dim=24)


def ragged(sentences: list[list[int]]) -> input_pipeline.Ragged:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    return np.asarray([i for s in sentences for i in s], np.uint16), offsets


# Data: the prepared layout and the tokeniser.


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return wmt_data.write_synthetic(tmp_path_factory.mktemp("wmt"), num_train=40, num_test=8)


def test_synthetic_layout_round_trips_every_sentence_with_eos_appended(synthetic):
    tokenizer = wmt_data.load_tokenizer(synthetic)
    counts = wmt_data.num_sentences(synthetic)
    assert counts == {"train": 40, "validation": 8, "test": 8}
    for split, side in itertools.product(wmt_data.SPLITS, wmt_data.SIDES):
        ids, offsets = wmt_data.read_side(synthetic, split, side)
        assert ids.dtype == np.uint16 and len(offsets) == counts[split] + 1
        for index in range(counts[split]):
            sentence = input_pipeline.sentence((ids, offsets), index)
            assert sentence[-1] == wmt_data.EOS_ID and (sentence[:-1] != wmt_data.EOS_ID).all()
            text = tokenizer.decode(sentence.tolist())
            assert tokenizer.encode(text) + [wmt_data.EOS_ID] == sentence.tolist()


def test_tokenizer_is_trained_as_algoperfs_unigram_with_full_character_coverage(synthetic):
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((synthetic / wmt_data.MODEL_FILE).read_bytes())
    assert proto.trainer_spec.model_type == sentencepiece_model_pb2.TrainerSpec.UNIGRAM
    assert proto.trainer_spec.character_coverage == 1.0
    ids = proto.trainer_spec
    assert (ids.unk_id, ids.bos_id, ids.eos_id, ids.pad_id) == (0, 1, wmt_data.EOS_ID, -1)


def test_tokenizer_corpus_alternates_sides_and_finishes_the_pair_past_the_limit():
    pairs = [("aaaa", "bb"), ("cc", "dddd"), ("e", "f")]
    assert wmt_data.tokenizer_corpus(pairs, max_chars=6) == ["aaaa", "bb"]
    assert wmt_data.tokenizer_corpus(pairs, max_chars=9) == ["aaaa", "bb", "cc", "dddd"]
    assert wmt_data.tokenizer_corpus(pairs, max_chars=10 ** 6) == [
        "aaaa", "bb", "cc", "dddd", "e", "f"]


def test_reading_unprepared_data_names_the_download_command(tmp_path):
    with pytest.raises(UserError, match="algoperf datasets download wmt"):
        wmt_data.read_side(tmp_path, "train", "inputs")


# The length filter and packing.


def test_length_filter_keeps_pairs_whose_longer_side_fits():
    inputs = ragged([[5, 2], [5, 5, 5, 2], [5, 2]])
    targets = ragged([[6, 6, 6, 2], [6, 2], [6, 6, 6, 6, 2]])
    np.testing.assert_array_equal(input_pipeline.kept_pairs(inputs, targets, 4), [0, 1])


def test_packing_gives_algoperfs_documented_example():
    """The example in the docstring of AlgoPerf's ``pack_dataset``."""
    packed = input_pipeline.pack([(np.array([8, 7, 1]), np.array([4, 1])),
                                  (np.array([2, 3, 4, 1]), np.array([5, 6, 1]))], 10)
    expected = {
        "inputs": [8, 7, 1, 2, 3, 4, 1, 0, 0, 0],
        "inputs_segmentation": [1, 1, 1, 2, 2, 2, 2, 0, 0, 0],
        "inputs_position": [0, 1, 2, 0, 1, 2, 3, 0, 0, 0],
        "targets": [4, 1, 5, 6, 1, 0, 0, 0, 0, 0],
        "targets_segmentation": [1, 1, 2, 2, 2, 0, 0, 0, 0, 0],
        "targets_position": [0, 1, 0, 1, 2, 0, 0, 0, 0, 0],
    }
    for key, row in expected.items():
        np.testing.assert_array_equal(packed[key], [row], err_msg=key)


def test_packing_starts_a_new_row_when_either_side_would_overflow():
    pairs = [(np.array([3, 3, 2]), np.array([4, 2])), (np.array([3, 2]), np.array([4, 4, 4, 2])),
             (np.array([3, 2]), np.array([2]))]
    packed = input_pipeline.pack(pairs, 5)
    np.testing.assert_array_equal(packed["inputs"], [[3, 3, 2, 0, 0], [3, 2, 3, 2, 0]])
    np.testing.assert_array_equal(packed["targets"], [[4, 2, 0, 0, 0], [4, 4, 4, 2, 2]])
    np.testing.assert_array_equal(packed["targets_segmentation"],
                                  [[1, 1, 0, 0, 0], [1, 1, 1, 1, 2]])


def test_packing_treats_unk_zeros_as_algoperf_drops_trailing_ids_and_zero_segments():
    packed = input_pipeline.pack([(np.array([5, 0, 6, 2]), np.array([7, 2]))], 6)
    np.testing.assert_array_equal(packed["inputs"], [[5, 0, 6, 0, 0, 0]])
    np.testing.assert_array_equal(packed["inputs_segmentation"], [[1, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(packed["inputs_position"], [[0, 1, 2, 0, 0, 0]])


def test_training_batches_pack_the_seeded_shuffle_of_the_kept_pairs_in_order():
    rng = np.random.RandomState(0)
    sentences = [[int(t) for t in rng.randint(3, 9, rng.randint(1, 8))] + [2]
                 for _ in range(30)]
    inputs, targets = ragged(sentences), ragged(sentences[::-1])
    kept = input_pipeline.kept_pairs(inputs, targets, 6)
    assert 0 < len(kept) < 30
    batches = input_pipeline.train_batches(inputs, targets, kept, 4, seed=3, max_length=6)
    seen = []
    for batch in itertools.islice(batches, 3):
        for row in range(4):
            segments = batch["inputs_segmentation"][row]
            for segment in range(1, segments.max() + 1):
                positions = batch["inputs_position"][row][segments == segment]
                np.testing.assert_array_equal(positions, np.arange(len(positions)))
                seen.append((tuple(batch["inputs"][row][segments == segment]), tuple(
                    batch["targets"][row][batch["targets_segmentation"][row] == segment])))
    order = itertools.islice(input_pipeline.shuffled_pairs(len(kept), 3), len(seen))
    expected = [(tuple(input_pipeline.sentence(inputs, int(kept[i]))),
                 tuple(input_pipeline.sentence(targets, int(kept[i])))) for i in order]
    assert seen == expected


# Beam search.


def markov_step(table: np.ndarray, beam_size: int):
    """A decode.Step whose next-token log-probabilities depend on the previous token only."""
    vocab = table.shape[0]

    def step(ids, live_logprobs, rows):
        del rows  # no cache
        scores = table[ids].reshape(*live_logprobs.shape, vocab) + live_logprobs[:, :, None]
        flat = scores.reshape(len(scores), -1)
        best = decode.top_k(flat, 2 * beam_size)
        return np.take_along_axis(flat, best, 1), best // vocab, best % vocab

    return step


def exhaustive_best(table: np.ndarray, max_length: int, alpha: float) -> list[int]:
    """The finished sequence of best length-penalised log-probability, by enumeration."""
    best, best_score = None, -math.inf
    for length in range(1, max_length):
        for seq in itertools.product(range(table.shape[0]), repeat=length):
            if seq[-1] != decode.EOS_ID or decode.EOS_ID in seq[:-1]:
                continue
            logprob = sum(table[prev, tok] for prev, tok in zip((0, *seq[:-1]), seq,
                                                                strict=True))
            score = logprob / decode.length_penalty(length, alpha)
            if score > best_score:
                best, best_score = list(seq), score
    return best


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_finds_the_exhaustive_optimum_when_the_beam_holds_every_sequence(seed):
    """Vocabulary {0, 1, 2=</s>}, 3 steps: at most 4 live sequences, so a beam of 4 keeps all
    and must return the best finished sequence under the length penalty."""
    rng = np.random.RandomState(seed)
    logits = rng.normal(size=(3, 3)) * 2
    table = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
    seqs, scores = decode.beam_search(markov_step(table, 4), 1, beam_size=4, alpha=0.6,
                                      max_decode_length=4)
    found = decode.until_eos(seqs[0, -1, 1:]).tolist()
    assert found == exhaustive_best(table, 4, 0.6)
    assert np.all(np.diff(scores[0]) >= 0)  # best beam last


def test_beam_search_returns_live_sequences_when_none_finishes_and_cuts_at_the_first_eos():
    table = np.full((12, 12), -5.0, np.float32)
    table[:, 1] = -0.01  # token 1 the likeliest; </s> (and 0) never among the 8 best
    table[:, [0, decode.EOS_ID]] = -30.0
    seqs, _ = decode.beam_search(markov_step(table, 4), 2, beam_size=4, max_decode_length=5)
    np.testing.assert_array_equal(seqs[:, -1], [[0, 1, 1, 1, 1]] * 2)
    # AlgoPerf's cut: with no </s>, only the first id is kept.
    np.testing.assert_array_equal(decode.until_eos(np.array([1, 1, 1])), [1])
    np.testing.assert_array_equal(decode.until_eos(np.array([4, 2, 5, 2])), [4, 2])


def test_beam_search_stops_once_every_row_has_beaten_the_live_bound():
    table = np.log(np.full((3, 3), 1e-6, np.float32))
    table[:, decode.EOS_ID] = 0.0  # </s> at once, with certainty
    calls = []
    step = markov_step(table, 4)
    decode.beam_search(lambda *a: calls.append(1) or step(*a), 1, beam_size=4,
                       max_decode_length=50)
    assert len(calls) < 49


# The models: decoding caches, and JAX vs PyTorch on a tiny configuration.


def tiny_models(seed: int = 0, **settings):
    jax_model = jax_models.Transformer(**TINY, deterministic=True, **settings)
    tokens = jnp.ones((2, 6), jnp.int32)
    params = jax_model.init(jax.random.PRNGKey(seed), tokens, tokens)["params"]
    torch_model = torch_models.Transformer(**TINY, **settings)
    state = parity.jax_to_pytorch(jax.tree.map(np.asarray, params))
    torch_model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()},
                                strict=True)
    return jax_model, params, torch_model.eval()


def tiny_batch(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    inputs = rng.randint(3, TINY["vocab_size"], (3, 7)).astype(np.int32)
    targets = rng.randint(3, TINY["vocab_size"], (3, 7)).astype(np.int32)
    inputs[0, 5:] = 0
    targets[1, 4:] = 0
    return inputs, targets


@pytest.mark.parametrize("settings", [{}, {"pre_ln": False}, {"attention_temp": 4.0},
                                      {"glu": True, "activation": "tanh"}],
                         ids=["base", "post_ln", "attention_temp", "glu_tanh"])
def test_tiny_models_agree_across_frameworks_with_packed_rows(settings):
    jax_model, params, torch_model = tiny_models(**settings)
    inputs, targets = tiny_batch()
    packing = {"inputs_positions": np.tile(np.arange(7), (3, 1)) % 4,
               "targets_positions": np.tile(np.arange(7), (3, 1)) % 4,
               "inputs_segmentation": (np.tile(np.arange(7), (3, 1)) >= 4) + 1,
               "targets_segmentation": (np.tile(np.arange(7), (3, 1)) >= 4) + 1}
    for extra in ({}, packing):
        jax_logits = jax_model.apply({"params": params}, inputs, targets,
                                     **{k: jnp.asarray(v) for k, v in extra.items()})
        with torch.no_grad():
            torch_logits = torch_model(torch.from_numpy(inputs), torch.from_numpy(targets),
                                       **{k: torch.from_numpy(np.asarray(v, np.int64))
                                          for k, v in extra.items()})
        np.testing.assert_allclose(np.asarray(jax_logits), torch_logits.numpy(), atol=2e-5,
                                   rtol=2e-5)


def jax_cached_logits(jax_model, params, inputs, targets):
    decoder = jax_model.clone(decode=True)
    cache = decoder.init(jax.random.PRNGKey(0), inputs, targets)["cache"]
    cache = jax.tree.map(jnp.zeros_like, cache)
    encoded = jax_model.apply({"params": params}, inputs, method=jax_models.Transformer.encode)
    ids = np.pad(targets, ((0, 0), (1, 0)))[:, :-1]
    steps = []
    for position in range(targets.shape[1]):
        logits, variables = decoder.apply(
            {"params": params, "cache": cache}, encoded, inputs, ids[:, position:position + 1],
            mutable=["cache"], method=jax_models.Transformer.decode_logits)
        cache = variables["cache"]
        steps.append(np.asarray(logits[:, 0]))
    return np.stack(steps, 1)


def torch_cached_logits(torch_model, inputs, targets):
    src = torch.from_numpy(inputs)
    ids = torch.from_numpy(np.pad(targets, ((0, 0), (1, 0)))[:, :-1])
    with torch.no_grad():
        memory = torch_model.encode(src, dropout_rate=0.0)
        cache = torch_model.init_cache(len(src), targets.shape[1], memory)
        return torch.stack([torch_model.decode_step(ids[:, i], memory, src, cache)
                            for i in range(targets.shape[1])], 1).numpy()


def test_the_pytorch_model_in_float64_computes_its_float32_function():
    """As training parity runs a row in float64 (``FLOAT64_TRAINING``): the additive masks
    must follow the queries' dtype (torch's CPU attention, given a float32 mask beside float64
    queries, attends where the mask forbids). Padding queries see no key, so only the
    positions of real targets are compared, in the full pass and in cached decoding. Rows
    of 16 positions: torch takes that kernel from about this length on."""
    _, _, torch_model = tiny_models()
    rng = np.random.RandomState(2)
    inputs, targets = (rng.randint(3, TINY["vocab_size"], (3, 16)) for _ in range(2))
    inputs[0, 11:] = 0
    targets[1, 9:] = 0
    real = targets != 0
    src, tgt = torch.from_numpy(inputs), torch.from_numpy(targets)
    double = copy.deepcopy(torch_model).double()
    with torch.no_grad():
        logits = {dtype: model(src, tgt).numpy()
                  for dtype, model in (("32", torch_model), ("64", double))}
    np.testing.assert_allclose(logits["64"][real], logits["32"][real], atol=2e-5, rtol=2e-5)
    decoded = np.where(real, targets, 5)
    np.testing.assert_allclose(torch_cached_logits(double, inputs, decoded),
                               torch_cached_logits(torch_model, inputs, decoded),
                               atol=2e-5, rtol=2e-5)


def test_cached_decoding_gives_the_full_forward_pass_logits_in_both_frameworks():
    """Step by step with the cache = all positions at once, where no target is padding (the
    full pass masks padding queries; decoding has none)."""
    jax_model, params, torch_model = tiny_models()
    inputs, targets = tiny_batch()
    targets = np.where(targets == 0, 5, targets)
    full = np.asarray(jax_model.apply({"params": params}, inputs, targets))
    np.testing.assert_allclose(jax_cached_logits(jax_model, params, inputs, targets), full,
                               atol=2e-5, rtol=2e-5)
    np.testing.assert_allclose(torch_cached_logits(torch_model, inputs, targets), full,
                               atol=2e-5, rtol=2e-5)


def test_jax_and_pytorch_beam_searches_give_the_same_translations():
    jax_module = __import__("algoperf.workloads.wmt.wmt_jax.workload", fromlist=["x"])
    torch_module = __import__("algoperf.workloads.wmt.wmt_pytorch.workload", fromlist=["x"])
    jax_model, params, torch_model = tiny_models(seed=3)

    class JaxTiny(jax_module.WmtWorkload):
        def _variant(self, **options):
            return jax_models.Transformer(**TINY, **options)

    jax_workload = JaxTiny(max_predict_length=9)
    torch_workload = torch_module.WmtWorkload(max_predict_length=9)
    inputs, _ = tiny_batch(seed=4)
    found_jax = jax_workload._translate(params, {"inputs": jnp.asarray(inputs)})
    found_torch = torch_workload._translate(torch_model, {"inputs": torch.from_numpy(
        inputs.astype(np.int64))})
    assert found_jax.shape == (3, 8)
    np.testing.assert_array_equal(found_jax, found_torch)


def test_registry_rows_are_implemented_with_algoperfs_counts():
    counts = {name: registry.get_workload(name).param_count
              for name in ("wmt", "wmt_post_ln", "wmt_attention_temp", "wmt_glu_tanh")}
    assert counts == {"wmt": 133_521_408, "wmt_post_ln": 133_517_312,
                      "wmt_attention_temp": 133_521_408, "wmt_glu_tanh": 146_116_608}
    assert all(registry.get_workload(name).implemented for name in counts)
