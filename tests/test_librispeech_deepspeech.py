"""DeepSpeech (``librispeech_deepspeech`` and its variants) beyond the shared suites: the two
frameworks' models on the same weights at a small width (outputs and gradients, every variant's
architecture), the bidirectional LSTM's handling of padded frames, the variants' settings, and
(full-size, ``full_models`` tier) training parity with PyTorch's second LSTM bias held fixed.

The small models are the workload's own classes at ``encoder_dim`` 32 with 2 LSTM and 2
feed-forward layers, so one JAX compile per variant costs seconds; their weights go through the
workload's own transfer (``librispeech_deepspeech.parity``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from algoperf import random_utils, spec
from algoperf.workloads import registry
from algoperf.workloads.common import parity
from algoperf.workloads.librispeech_deepspeech import parity as transfer
from algoperf.workloads.librispeech_deepspeech.librispeech_deepspeech_jax import (
    models as jax_models,
)
from algoperf.workloads.librispeech_deepspeech.librispeech_deepspeech_pytorch import (
    models as torch_models,
)

NAMES = ("librispeech_deepspeech", "librispeech_deepspeech_tanh",
         "librispeech_deepspeech_no_resnet", "librispeech_deepspeech_norm_and_spec_aug")
SMALL = {"vocab_size": 16, "encoder_dim": 32, "num_lstm_layers": 2, "num_ffn_layers": 2}
SAMPLES = 4_000  # 24 frames, 6 after subsampling


def small_configs(name: str):
    """The row's model configuration in both frameworks, at the small width."""
    settings = {k: v for k, v in registry.get_workload(name).settings.items()
                if k != "eval_batch_size"}
    return (jax_models.DeepspeechConfig(**SMALL, **settings),
            torch_models.DeepspeechConfig(**SMALL, **settings))


def audio_batch(seed: int = 0):
    """Four utterances of int16-scale noise, of different lengths; the last is all padding
    (a row padding an eval batch)."""
    rs = np.random.RandomState(seed)
    audio = (rs.normal(size=(4, SAMPLES)) * 3_000).astype(np.float32)
    paddings = np.zeros_like(audio)
    for row, length in enumerate((SAMPLES, 3_000, 1_700, 0)):
        paddings[row, length:] = 1.0
        audio[row, length:] = 0.0
    return audio, paddings


def small_pair(name: str):
    """A small JAX model, its variables, and the PyTorch model holding their transfer."""
    jax_config, torch_config = small_configs(name)
    model = jax_models.Deepspeech(jax_config)
    audio, paddings = audio_batch()
    variables = jax.jit(functools.partial(model.init, train=False))(
        jax.random.PRNGKey(0), audio, paddings)
    state = {"batch_stats": variables["batch_stats"]} if "batch_stats" in variables else {}
    torch_model = torch_models.DeepspeechEncoderDecoder(torch_config)
    state_dict = transfer.jax_to_pytorch(jax.device_get(variables["params"]),
                                         jax.device_get(state))
    torch_model.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in
                                 state_dict.items()}, strict=True)
    return model, variables["params"], state, torch_model


def ctc_targets():
    """Targets of the three real utterances (the all-padding row has no loss)."""
    targets = np.array([[3, 5, 7], [2, 2, 0], [9, 0, 0]], np.int32)
    return targets, (targets == 0).astype(np.float32)


# The base row and _norm_and_spec_aug (layer norms, more masks, no decoder norm) in CI; the
# activation and residual switches of the other two in the full tier.
SMALL_CASES = [NAMES[0], NAMES[3], *(pytest.param(name, marks=pytest.mark.full_models)
                                     for name in NAMES[1:3])]


@pytest.mark.parametrize("name", SMALL_CASES)
def test_small_models_agree_on_outputs_and_gradients_in_both_frameworks(name):
    """EVAL logits (running averages), TRAIN logits (batch statistics, SpecAugment from one
    key, dropout off) and the gradients of the CTC loss agree; PyTorch's two LSTM biases each
    get the gradient of flax's one."""
    model, params, state, torch_model = small_pair(name)
    audio, paddings = audio_batch()
    key = jax.random.PRNGKey(7)
    targets, target_paddings = ctc_targets()

    def jax_loss(params, audio, paddings):
        (logits, out_paddings), _ = model.apply(
            {"params": params, **state}, audio, paddings, train=True, dropout_rate=0.0,
            specaug_key=key, mutable=["batch_stats"])
        per_example = jax_optax_ctc(logits[:3], out_paddings[:3], targets, target_paddings)
        return per_example.sum(), logits

    @jax.jit  # one program for both modes: compiling is most of this test's cost
    def jax_outputs(params, audio, paddings):
        (_, train_logits), grads = jax.value_and_grad(jax_loss, has_aux=True)(
            params, audio, paddings)
        eval_logits, _ = model.apply({"params": params, **state}, audio, paddings, train=False)
        return eval_logits, train_logits, grads

    jax_eval, jax_train, grads = jax_outputs(params, audio, paddings)

    torch_audio, torch_paddings = torch.from_numpy(audio), torch.from_numpy(paddings)
    torch_model.eval()
    with torch.no_grad():
        torch_eval, _ = torch_model(torch_audio, torch_paddings)
    torch_model.train()
    torch_train, out_paddings = torch_model(torch_audio, torch_paddings, dropout_rate=0.0,
                                            specaug_key=np.asarray(key))
    log_probs = torch.log_softmax(torch_train[:3], -1).transpose(0, 1)
    lengths = (1 - out_paddings[:3]).sum(-1).long()
    per_example = torch.nn.functional.ctc_loss(
        log_probs, torch.from_numpy(targets).long(), lengths,
        torch.from_numpy((1 - target_paddings).sum(-1)).long(), reduction="none")
    per_example.sum().backward()

    real = (1 - np.asarray(out_paddings.detach()))[..., None] > 0
    np.testing.assert_allclose(np.asarray(jax_eval), torch_eval.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.where(real, np.asarray(jax_train), 0),
                               np.where(real, torch_train.detach().numpy(), 0),
                               rtol=1e-4, atol=1e-5)
    expected = transfer.jax_to_pytorch(jax.device_get(grads), jax.device_get(state))
    for key_name, parameter in torch_model.named_parameters():
        wanted = expected[key_name.replace("bias_hh", "bias_ih")] \
            if "bias_hh" in key_name else expected[key_name]
        scale = np.abs(wanted).max()  # float32 sums over every frame: relative to the tensor
        np.testing.assert_allclose(parameter.grad.numpy(), wanted, rtol=1e-3,
                                   atol=1e-4 * scale + 1e-5, err_msg=key_name)


def jax_optax_ctc(logits, logit_paddings, targets, target_paddings):
    import optax

    return optax.ctc_loss(jax.nn.log_softmax(logits), logit_paddings, targets,
                          target_paddings, blank_id=0)


def test_bidirectional_lstm_ignores_what_padded_frames_hold_and_zeros_their_outputs():
    """Both directions read only each utterance's real frames (the backward one starts at the
    last real frame), in both frameworks, and agree on the transferred weights."""
    config = dataclasses.replace(jax_models.DeepspeechConfig(**SMALL),
                                 layernorm_everywhere=True)
    layer = jax_models.BatchRNN(config)
    rs = np.random.RandomState(0)
    x = rs.normal(size=(3, 7, 32)).astype(np.float32)
    paddings = np.zeros((3, 7), np.float32)
    paddings[1, 4:] = 1
    paddings[2, :] = 1
    variables = jax.jit(layer.init, static_argnums=(3, 4))(jax.random.PRNGKey(0), x,
                                                             paddings, False, True)
    apply = jax.jit(lambda inputs: layer.apply(variables, inputs, jnp.asarray(paddings), False,
                                               True))
    noisy = np.where(paddings[..., None] > 0, 100.0, x).astype(np.float32)
    out = np.asarray(apply(x))
    np.testing.assert_allclose(np.asarray(apply(noisy)), out, rtol=1e-6, atol=1e-6)
    assert np.all(out[paddings > 0] == 0) and np.abs(out[paddings == 0]).min() > 0

    torch_layer = torch_models.BatchRNN(torch_models.DeepspeechConfig(
        **SMALL, layernorm_everywhere=True))
    params = jax.device_get(variables["params"])
    cells = params["LSTM_0"]["LSTM"]
    norm = params["LayerNorm_0"]
    torch_layer.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in {
        "normalization_layer.scale": norm["scale"], "normalization_layer.bias": norm["bias"],
        **parity.prefixed("lstm", {
            **transfer.lstm_direction(cells["LSTMSequenceEncoder_0"]["cell"]),
            **transfer.lstm_direction(cells["LSTMSequenceEncoder_1"]["cell"], "_reverse")}),
    }.items()}, strict=True)
    with torch.no_grad():
        torch_out = torch_layer(torch.from_numpy(noisy), torch.from_numpy(paddings),
                                (False, True))
    np.testing.assert_allclose(torch_out.numpy(), out, rtol=1e-5, atol=1e-6)


def test_variants_set_algoperfs_settings_and_layer_norms_leave_no_model_state():
    for name in NAMES:
        workload = registry.import_workload(name, "pytorch")
        config, info = workload._config(), registry.get_workload(name)
        assert workload.eval_batch_size == info.settings.get("eval_batch_size", 256)
        assert config.layernorm_everywhere == bool(info.settings.get("layernorm_everywhere"))
        assert workload.loss_type == spec.LossType.CTC_LOSS
        assert workload.eval_period_time_sec == 1_440 and workload.step_hint == 38_400
    config = registry.import_workload(NAMES[3], "pytorch")._config()
    assert (config.freq_mask_count, config.time_mask_count) == (4, 15)
    assert not config.enable_decoder_layer_norm
    _, state = jax.eval_shape(registry.import_workload(NAMES[3], "jax").init_model_fn,
                              jax.random.PRNGKey(0))
    assert state == {}


def test_a_conformer_setting_is_refused_naming_deepspeechs():
    with pytest.raises(TypeError, match="use_tanh"):
        registry.import_workload("librispeech_deepspeech", "jax", attention_temperature=1.6)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    from algoperf.datasets import librispeech

    root = tmp_path_factory.mktemp("deepspeech-data")
    librispeech.write_synthetic(root)
    return str(root)


# The base and _tanh rows. Left out, not settled yet: _no_resnet, whose 5 SGD steps at lr 0.05
# still part with bias_hh frozen (step-4 losses 12.34 against 11.89) though its outputs and
# small-model gradients agree; and _norm_and_spec_aug, which plain SGD at lr 0.05 makes
# diverge in both frameworks (losses near 1e10 by step 4): it needs a rate of its own.
@pytest.mark.full_models
@pytest.mark.parametrize("name", NAMES[:2])
def test_full_size_training_parity_holds_with_pytorchs_second_lstm_bias_fixed(
        name, synthetic_dir):
    """The shared suite's training parity of these rows fails by design (two LSTM biases in
    PyTorch, ``parity.UNRESOLVED_TRAINING_DIFFERENCES``); with ``bias_hh`` out of the
    optimiser the rest of the model trains alike at the workload's tolerances."""
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    try:
        pair = parity.Pair.build(name, 0, reduced=True)
        batches = pair.batches(synthetic_dir, 8, 5)
        for key_name, parameter in pair.model.named_parameters():
            parameter.requires_grad_("bias_hh" not in key_name)
        result = parity.training_parity(pair, batches, 0.05)
    finally:
        random_utils.set_framework(previous)
    assert result.ok and result.differences["params:bias_hh_l0"].max_abs == 0
