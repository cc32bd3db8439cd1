"""finewebedu_lm: the token-window pipeline, the model's pieces, its metrics.

The conformance and parity suites cover the full model (parameter count, AlgoPerf's names,
JAX-vs-PyTorch agreement); the model tests here build one-block models over a small
vocabulary, so they cost little.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from algoperf.datasets import finewebedu
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.common.registered import import_reduced
from algoperf.workloads.finewebedu_lm import workload as constants
from algoperf.workloads.finewebedu_lm.finewebedu_lm_jax import models as jax_models
from algoperf.workloads.finewebedu_lm.finewebedu_lm_pytorch import models as torch_models

SMALL_VOCAB = 64


# The prepared data and its windows.


def test_windows_cut_the_stream_into_inputs_and_targets_shifted_by_one():
    stream = np.arange(23, dtype=finewebedu.DTYPE)
    inputs, targets = finewebedu.windows(stream, 4)
    assert inputs.shape == targets.shape == (4, 4)  # 23 // 5 windows; 3 tokens dropped
    np.testing.assert_array_equal(inputs[1], [5, 6, 7, 8])
    np.testing.assert_array_equal(targets[1], [6, 7, 8, 9])
    np.testing.assert_array_equal(inputs[[3, 0]], [[15, 16, 17, 18], [0, 1, 2, 3]])


def test_a_split_too_short_for_one_window_is_a_user_error():
    with pytest.raises(UserError, match="no window of 9 tokens"):
        finewebedu.windows(np.zeros(8, finewebedu.DTYPE), 8)


def test_prepare_documents_appends_end_of_text_and_cuts_validation_first(tmp_path):
    documents = ["a b", "c", "d e f"]
    ids = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}
    result = finewebedu.prepare_documents(
        documents, lambda text: [ids[word] for word in text.split()], tmp_path,
        validation_tokens=4)
    eos = finewebedu.EOS_ID
    assert result == {"tokens": {"train": 5, "validation": 4}}
    np.testing.assert_array_equal(finewebedu.tokens(tmp_path, "validation"), [1, 2, eos, 3])
    np.testing.assert_array_equal(finewebedu.tokens(tmp_path, "train"), [eos, 4, 5, 6, eos])
    meta = json.loads((tmp_path / finewebedu.META_FILE).read_text())
    assert meta["tokens"] == result["tokens"]
    assert isinstance(finewebedu.tokens(tmp_path, "train"), np.memmap)


def test_prepare_documents_rejects_ids_outside_gpt2s_vocabulary(tmp_path):
    with pytest.raises(UserError, match="GPT-2"):
        finewebedu.prepare_documents(["x"], lambda text: [finewebedu.VOCAB_SIZE], tmp_path)


def test_missing_data_is_a_user_error_naming_the_download(tmp_path):
    with pytest.raises(UserError, match="algoperf datasets download finewebedu"):
        finewebedu.tokens(tmp_path, "train")


def test_the_input_queue_reads_windows_of_the_memory_map_as_per_position_rows(tmp_path):
    finewebedu.write_synthetic(tmp_path)
    workload = import_reduced("finewebedu_lm", "pytorch")  # no model needed for batches
    stream = finewebedu.tokens(tmp_path / finewebedu.NAME, "validation")
    batch = next(workload._build_input_queue(None, "validation", str(tmp_path), 4))
    length = workload.sequence_length
    assert batch["inputs"].shape == (4, length)
    assert batch["targets"].shape == batch["weights"].shape == (4 * length,)
    window = length + 1
    expected = np.asarray(stream[:4 * window]).reshape(4, window)
    np.testing.assert_array_equal(batch["inputs"].numpy(), expected[:, :-1])
    np.testing.assert_array_equal(batch["targets"].numpy(), expected[:, 1:].reshape(-1))
    assert workload.num_validation_examples == len(stream) // window
    assert workload.num_test_examples is None  # AlgoPerf's LM has no test split


# The registry row.


def test_the_row_is_the_a100_leaderboards_and_not_a_v06_workload():
    info = registry.get_workload("finewebedu_lm")
    assert (info.target_metric_name, info.validation_target_value) == ("ppl", 22.2995)
    assert info.test_target_value is None and not info.reached(22.2995, strict=True)
    assert (info.max_allowed_runtime_sec, info.step_hint, info.eval_period_time_sec) == \
        (31967, 72000, 2571)
    assert "finewebedu_lm" in registry.RULES["a100"].base_workloads
    assert registry.RULES["a100"].budget("finewebedu_lm") == 31967
    assert registry.RULES["a100"].budget("finewebedu_lm", "self") == 31967 * 1.5
    assert "finewebedu_lm" not in registry.RULES["v0.6"].base_workloads


# The model's pieces.


def test_the_parameter_count_is_the_architectures():
    per_block = (3 * 1024 * 1024 + 1024 * 1024 + 1  # q, k, v; out; attn_scale
                 + 1024 * 2 * 4096 + 4096 * 1024 + 2 * 1024)  # GLU MLP; two RMSNorms
    count = constants.VOCAB_SIZE * 1024 + 12 * per_block + 1024
    assert count == registry.get_workload("finewebedu_lm").param_count == 252_815_372


def test_rotary_attention_scores_depend_only_on_the_offset_between_positions():
    rng = np.random.RandomState(0)
    q, k = (jnp.asarray(np.broadcast_to(rng.normal(size=(1, 1, 1, 16)), (1, 12, 1, 16)))
            for _ in range(2))
    angles = jax_models.rope_angles(12, 16)
    q, k = jax_models.apply_rope(q, angles), jax_models.apply_rope(k, angles)
    scores = np.asarray(jnp.einsum("bqhd,bkhd->qk", q, k))
    np.testing.assert_allclose(scores[5, 2], scores[9, 6], rtol=1e-5)
    np.testing.assert_allclose(scores[3, 3], scores[0, 0], rtol=1e-5)
    assert not np.isclose(scores[5, 2], scores[5, 4])


def test_rope_and_qk_norm_agree_between_the_frameworks():
    x = np.random.RandomState(1).normal(size=(2, 7, 3, 8)).astype(np.float32)
    angles = jax_models.rope_angles(7, 8)
    ours = jax_models.l2_normalize(jax_models.apply_rope(jnp.asarray(x), angles))
    theirs = torch_models.l2_normalize(torch_models.apply_rope(
        torch.from_numpy(x), torch_models.rope_angles(7, 8, torch.device("cpu"))))
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(ours), axis=-1), 1.0, rtol=1e-5)


def test_attn_scale_starts_at_log2_of_the_context_pairs():
    assert constants.ATTN_SCALE_INIT == pytest.approx(math.log2(1024 * 1024 - 1024))
    assert constants.ATTN_SCALE_INIT == pytest.approx(19.9986, abs=1e-4)


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_fused_attention_is_the_plain_causal_softmax(framework):
    tokens = np.random.RandomState(2).randint(0, SMALL_VOCAB, size=(2, 9))
    if framework == "jax":
        outputs = []
        params = None
        for kind in jax_models.ATTENTION_KINDS:
            model = jax_models.TransformerDo(SMALL_VOCAB, num_layers=1, attention=kind)
            params = params or jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(tokens))
            outputs.append(np.asarray(jax.jit(model.apply)(params, jnp.asarray(tokens))))
    else:
        torch.manual_seed(0)
        fused = torch_models.Transformer(SMALL_VOCAB, num_layers=1, attention="fused")
        plain = torch_models.Transformer(SMALL_VOCAB, num_layers=1, attention="plain")
        plain.load_state_dict(fused.state_dict())
        with torch.no_grad():
            outputs = [m(torch.from_numpy(tokens)).numpy() for m in (fused, plain)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_a_position_never_sees_later_tokens(framework):
    tokens = np.random.RandomState(3).randint(0, SMALL_VOCAB, size=(1, 8))
    changed = tokens.copy()
    changed[0, 5:] = (changed[0, 5:] + 1) % SMALL_VOCAB
    if framework == "jax":
        model = jax_models.TransformerDo(SMALL_VOCAB, num_layers=1)
        params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(tokens))
        apply = jax.jit(model.apply)
        a, b = (np.asarray(apply(params, jnp.asarray(t))) for t in (tokens, changed))
    else:
        model = torch_models.Transformer(SMALL_VOCAB, num_layers=1)
        with torch.no_grad():
            a, b = (model(torch.from_numpy(t)).numpy() for t in (tokens, changed))
    np.testing.assert_allclose(a[0, :5], b[0, :5], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a[0, 5:], b[0, 5:])


def test_the_pytorch_output_layer_is_the_embedding_table():
    model = torch_models.Transformer(SMALL_VOCAB, num_layers=1)
    with torch.no_grad():
        model.embed_tokens.weight[3].zero_()
        logits = model(torch.zeros(1, 4, dtype=torch.long))
    assert torch.all(logits[..., 3] == 0)
    assert "lm_head.weight" not in dict(model.named_parameters())


# Metrics.


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_loss_is_token_cross_entropy_with_algoperfs_label_smoothing(framework):
    """Against torch's log_softmax computed here: -(1 - a) log p_target - (a / V) sum log p."""
    workload = import_reduced("finewebedu_lm", framework)
    rng = np.random.RandomState(4)
    logits = rng.normal(size=(6, SMALL_VOCAB)).astype(np.float32)
    labels = rng.randint(0, SMALL_VOCAB, size=6)
    mask = np.array([1, 1, 0, 1, 1, 1], np.float32)
    log_p = torch.log_softmax(torch.from_numpy(logits).double(), -1).numpy()
    alpha = 0.1
    expected = -(1 - alpha) * log_p[np.arange(6), labels] - alpha / SMALL_VOCAB * log_p.sum(-1)
    convert = jnp.asarray if framework == "jax" else torch.from_numpy
    out = workload.loss_fn(convert(labels), convert(logits), convert(mask), alpha)
    np.testing.assert_allclose(np.asarray(out["per_example"]), expected * mask, rtol=1e-5)
    assert float(out["n_valid_examples"]) == 5

