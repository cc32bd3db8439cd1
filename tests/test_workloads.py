"""The digits and MNIST workloads in JAX and PyTorch, and the numpy pipeline they share.

MNIST runs on files the tests write in the real IDX-in-gzip format: full-size (60,000 + 10,000
synthetic images, so the real split sizes hold) for the model tests, small or broken ones for
the error tests.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from algoperf import jax_sharding_utils, random_utils, spec
from algoperf.datasets import mnist as mnist_data
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.common import pipeline

WORKLOADS = ("digits", "mnist")
FRAMEWORKS = ("jax", "pytorch")
TRAIN = spec.ForwardPassMode.TRAIN
EVAL = spec.ForwardPassMode.EVAL
PARAM_COUNTS = {"digits": 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10, "mnist": 101_770}


def write_idx(path, array: np.ndarray) -> None:
    path.write_bytes(mnist_data.idx_gz(array))


def write_mnist(directory, num_train=60_000, num_test=10_000) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in mnist_data.synthetic_files(num_train, num_test).items():
        (directory / name).write_bytes(data)


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory) -> str:
    data_dir = tmp_path_factory.mktemp("data")
    mnist_data.write_synthetic(data_dir)
    return str(data_dir)


@pytest.fixture(autouse=True)
def _numpy_rngs():
    """Keys built in a test come from the numpy threefry backend, as in a PyTorch run."""
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    yield
    random_utils.set_framework(previous)


def data_dir_of(name: str, request) -> str | None:
    return request.getfixturevalue("mnist_data_dir") if name == "mnist" else None


def rngs(seed: int) -> np.ndarray:
    """The runner's (data, optimizer init, model init, update) keys of a trial seed."""
    return random_utils.split(random_utils.PRNGKey(seed), 4)


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# The shared pipeline.


def test_seed_from_rng_reads_the_first_word_of_numpy_and_jax_keys():
    key = np.array([123456789, 42], np.uint32)
    assert pipeline.seed_from_rng(key) == 123456789
    assert pipeline.seed_from_rng(jnp.asarray(key)) == 123456789
    assert pipeline.seed_from_rng(jax.random.wrap_key_data(jnp.asarray(key))) == 123456789
    assert pipeline.seed_from_rng(np.array([2**32 - 1, 0], np.uint32)) == 2**32 - 1


def test_train_batches_reshuffle_every_epoch_and_drop_the_remainder():
    arrays = {"inputs": np.arange(10, dtype=np.float32)[:, None], "targets": np.arange(10)}
    batches = pipeline.train_batches(arrays, batch_size=3, seed=5)
    epochs = [np.concatenate([next(batches)["targets"] for _ in range(3)]) for _ in range(4)]
    for epoch in epochs:
        assert len(set(epoch.tolist())) == 9  # 3 full batches of distinct rows, 1 row dropped
    assert len({tuple(epoch) for epoch in epochs}) > 1
    batch = next(batches)
    np.testing.assert_array_equal(batch["inputs"][:, 0], batch["targets"])
    np.testing.assert_array_equal(batch["weights"], np.ones(3, np.float32))


def test_train_batches_depend_only_on_the_seed():
    arrays = {"inputs": np.zeros((50, 2), np.float32), "targets": np.arange(50)}
    first = [next(pipeline.train_batches(arrays, 8, seed))["targets"] for seed in (1, 1, 2)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])


def test_train_batches_larger_than_the_split_raise_user_error():
    arrays = {"inputs": np.zeros((5, 2), np.float32), "targets": np.arange(5)}
    with pytest.raises(UserError, match="batch size 6"):
        pipeline.train_batches(arrays, 6, seed=0)


def test_eval_batches_pad_the_last_batch_with_zero_weights_and_repeat():
    arrays = {"inputs": np.arange(1, 11, dtype=np.float32)[:, None], "targets": np.arange(10)}
    batches = pipeline.eval_batches(arrays, batch_size=4)
    one_pass = [next(batches) for _ in range(3)]
    assert all(batch["inputs"].shape == (4, 1) for batch in one_pass)
    np.testing.assert_array_equal(one_pass[2]["weights"], [1, 1, 0, 0])
    np.testing.assert_array_equal(one_pass[2]["inputs"][:, 0], [9, 10, 0, 0])
    assert sum(batch["weights"].sum() for batch in one_pass) == 10
    np.testing.assert_array_equal(next(batches)["targets"], [0, 1, 2, 3])  # starts over
    assert len(list(pipeline.eval_batches(arrays, batch_size=4, repeat=False))) == 3


# Models, parameters and initialisation.


@pytest.mark.parametrize("name", WORKLOADS)
def test_init_gives_the_param_count_and_param_shapes_in_both_frameworks(name):
    jax_workload = registry.import_workload(name, "jax")
    torch_workload = registry.import_workload(name, "pytorch")
    params, jax_state = jax_workload.init_model_fn(rngs(0)[2])
    model, torch_state = torch_workload.init_model_fn(rngs(0)[2])
    assert jax_state is None and torch_state is None
    # That the shapes correspond layer by layer is the parity harness's strict transfer.
    jax_count = sum(leaf.size for leaf in jax.tree.leaves(params))
    torch_count = sum(p.numel() for p in model.parameters())
    assert jax_count == torch_count == PARAM_COUNTS[name]
    assert jax.tree.leaves(jax_workload.param_shapes) == [
        spec.ShapeTuple(leaf.shape) for leaf in jax.tree.leaves(params)]
    assert list(torch_workload.param_shapes) == [n for n, _ in model.named_parameters()]


@pytest.mark.parametrize("name", WORKLOADS)
def test_param_types_and_output_params_mark_the_last_layer(name):
    jax_workload = registry.import_workload(name, "jax")
    torch_workload = registry.import_workload(name, "pytorch")
    params, _ = jax_workload.init_model_fn(rngs(0)[2])
    model, _ = torch_workload.init_model_fn(rngs(0)[2])
    types = jax_workload.model_params_types
    assert all(types[layer] == {"kernel": spec.ParameterType.WEIGHT,
                                "bias": spec.ParameterType.BIAS} for layer in params)
    assert [jax_workload.is_output_params(layer) for layer in params] == \
        [False] * (len(params) - 1) + [True]
    names = [n for n, _ in model.named_parameters()]
    assert [torch_workload.model_params_types[n] for n in names] == \
        [spec.ParameterType.WEIGHT, spec.ParameterType.BIAS] * (len(names) // 2)
    assert [torch_workload.is_output_params(n) for n in names] == \
        [False] * (len(names) - 2) + [True, True]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_init_is_reproducible_from_the_rng(framework):
    workload = registry.import_workload("digits", framework)

    def first_layer(rng):
        params, _ = workload.init_model_fn(rng)
        return to_numpy(params["Dense_0"]["kernel"] if framework == "jax"
                        else params.net.layer1.weight)

    key = rngs(3)[2]
    np.testing.assert_array_equal(first_layer(key), first_layer(jnp.asarray(key)))
    assert not np.array_equal(first_layer(key), first_layer(rngs(4)[2]))


def test_pytorch_init_is_statistically_like_flax():
    """Both start as LeCun-normal truncated at 2 sigma: std 1/sqrt(fan_in), no outliers."""
    params, _ = registry.import_workload("digits", "jax").init_model_fn(rngs(0)[2])
    model, _ = registry.import_workload("digits", "pytorch").init_model_fn(rngs(0)[2])
    jax_kernel = to_numpy(params["Dense_1"]["kernel"])
    torch_weight = to_numpy(model.net.layer2.weight)
    expected_std = 1 / np.sqrt(256)
    for weights in (jax_kernel, torch_weight):
        assert weights.std() == pytest.approx(expected_std, rel=0.03)
        assert np.abs(weights).max() <= 2 * expected_std / 0.8796 + 1e-6
    assert np.all(to_numpy(model.net.layer2.bias) == 0)
    assert np.all(to_numpy(params["Dense_1"]["bias"]) == 0)


# Batches, model_fn and loss_fn.


@pytest.mark.parametrize("name", WORKLOADS)
def test_training_batches_are_identical_across_frameworks(name, request):
    data_dir = data_dir_of(name, request)
    numpy_key = rngs(11)[0]
    jax_key = jax.random.split(jax.random.PRNGKey(11), 4)[0]  # the same key, made by JAX
    np.testing.assert_array_equal(numpy_key, np.asarray(jax_key))
    jax_queue = registry.import_workload(name, "jax")._build_input_queue(
        jax_key, "train", data_dir, 128)
    torch_queue = registry.import_workload(name, "pytorch")._build_input_queue(
        numpy_key, "train", data_dir, 128)
    for _ in range(25):  # several epochs of digits
        jax_batch, torch_batch = next(jax_queue), next(torch_queue)
        np.testing.assert_array_equal(
            np.asarray(jax_batch["inputs"]).transpose(0, 3, 1, 2), torch_batch["inputs"].numpy())
        np.testing.assert_array_equal(jax_batch["targets"], torch_batch["targets"].numpy())
        np.testing.assert_array_equal(jax_batch["weights"], torch_batch["weights"].numpy())
    other = registry.import_workload(name, "pytorch")._build_input_queue(
        rngs(12)[0], "train", data_dir, 128)
    assert not np.array_equal(next(other)["targets"], torch_batch["targets"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", WORKLOADS)
def test_model_fn_gives_logits_per_example_in_the_framework_layout(name, framework, request):
    workload = registry.import_workload(name, framework)
    params, state = workload.init_model_fn(rngs(0)[2])
    batch = next(workload._build_input_queue(rngs(0)[0], "train", data_dir_of(name, request),
                                             16))
    height, width, channels = workload.input_shape
    expected = (16, height, width, channels) if framework == "jax" else \
        (16, channels, height, width)
    assert tuple(batch["inputs"].shape) == expected
    logits, new_state = workload.model_fn(params, batch, state, TRAIN, rngs(0)[3], True)
    assert tuple(logits.shape) == (16, 10) and new_state is None
    eval_logits, _ = workload.model_fn(params, batch, state, EVAL, rngs(0)[3], False)
    np.testing.assert_allclose(to_numpy(eval_logits), to_numpy(logits), rtol=1e-6)


def test_loss_fn_masks_padding():
    """Each framework on its own; that both give the same losses on the same logits (masked,
    label-smoothed) is the parity harness's ``loss_fn`` check (tests/test_parity.py)."""
    logits = np.random.RandomState(0).normal(size=(6, 10)).astype(np.float32)
    labels = np.array([0, 3, 9, 3, 5, 1])
    mask = np.array([1, 1, 1, 1, 0, 0], np.float32)
    jax_workload = registry.import_workload("digits", "jax")
    torch_workload = registry.import_workload("digits", "pytorch")
    for smoothing in (0.0, 0.1):
        jax_out = jax_workload.loss_fn(jnp.asarray(labels), jnp.asarray(logits),
                                       jnp.asarray(mask), smoothing)
        torch_out = torch_workload.loss_fn(torch.from_numpy(labels), torch.from_numpy(logits),
                                           torch.from_numpy(mask), smoothing)
        for out in (jax_out, torch_out):
            assert float(out["n_valid_examples"]) == 4
            per_example = to_numpy(out["per_example"])
            assert per_example.shape == (6,) and np.all(per_example[4:] == 0)
            assert float(out["summed"]) == pytest.approx(per_example.sum(), rel=1e-6)
    unmasked = jax_workload.loss_fn(jnp.asarray(labels), jnp.asarray(logits))
    assert float(unmasked["n_valid_examples"]) == 6
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert float(unmasked["summed"]) == pytest.approx(-log_probs[np.arange(6), labels].sum(),
                                                      rel=1e-5)


# Evaluation and training.


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", WORKLOADS)
def test_untrained_eval_scores_accuracies_and_about_ln10_losses(name, framework, request):
    """Names, finiteness and repeatability of eval_model: tests/test_workload_conformance.py."""
    workload = registry.import_workload(name, framework)
    params, state = workload.init_model_fn(rngs(0)[2])
    result = workload.eval_model(workload.eval_batch_size, params, state, rngs(0)[3],
                                 data_dir_of(name, request), None, 0)
    for split in ("train", "validation", "test"):
        assert 0.0 <= result[f"{split}/accuracy"] <= 1.0
        assert 1.0 < result[f"{split}/loss"] < 5.0  # about ln(10) for an untrained model


def test_eval_accuracy_counts_only_real_examples():
    """Digits' validation split is one batch of 300 real rows and 724 padding rows."""
    workload = registry.import_workload("digits", "jax")
    params, _ = workload.init_model_fn(rngs(0)[2])
    batch = next(workload._build_input_queue(None, "validation", None, 1024))
    assert float(batch["weights"].sum()) == 300
    logits, _ = workload.model_fn(params, batch, None, EVAL, None, False)
    real = np.asarray(batch["weights"]) == 1
    expected = np.mean(np.asarray(logits).argmax(-1)[real] == np.asarray(batch["targets"])[real])
    result = workload.eval_model(1024, params, None, rngs(0)[3], None, None, 0)
    assert result["validation/accuracy"] == pytest.approx(expected)


def train_jax(workload, steps: int, batch_size: int):
    params, _ = workload.init_model_fn(rngs(1)[2])
    optimizer = optax.adam(1e-3)
    opt_state = jax_sharding_utils.replicate(optimizer.init(params))  # where params live

    @jax.jit
    def step(params, opt_state, batch):
        def mean_loss(params):
            logits, _ = workload.model_fn(params, batch, None, TRAIN, None, True)
            loss = workload.loss_fn(batch["targets"], logits, batch["weights"])
            return loss["summed"] / loss["n_valid_examples"]

        updates, opt_state = optimizer.update(jax.grad(mean_loss)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    queue = workload._build_input_queue(rngs(1)[0], "train", None, batch_size)
    for _ in range(steps):
        params, opt_state = step(params, opt_state, next(queue))
    return params


def train_pytorch(workload, steps: int, batch_size: int):
    model, _ = workload.init_model_fn(rngs(1)[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    queue = workload._build_input_queue(rngs(1)[0], "train", None, batch_size)
    for _ in range(steps):
        batch = next(queue)
        logits, _ = workload.model_fn(model, batch, None, TRAIN, None, True)
        loss = workload.loss_fn(batch["targets"], logits, batch["weights"])
        optimizer.zero_grad()
        (loss["summed"] / loss["n_valid_examples"]).backward()
        optimizer.step()
    return model


@pytest.fixture
def one_torch_thread():
    """Tiny models train fastest on one thread; two stall when other jobs share the 2 cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_few_hundred_adam_steps_on_digits_reach_high_validation_accuracy(framework,
                                                                           one_torch_thread):
    workload = registry.import_workload("digits", framework)
    train = train_jax if framework == "jax" else train_pytorch
    params = train(workload, steps=300, batch_size=64)
    result = workload.eval_model(workload.eval_batch_size, params, None, rngs(1)[3], None,
                                 None, 300)
    assert result["validation/accuracy"] > 0.9  # chance is 0.1
    assert result["validation/loss"] < 0.5
    assert workload.has_reached_validation_target(result) == (
        result["validation/accuracy"] > workload.validation_target_value)


# Data.


def test_digits_split_is_fixed_sized_and_standardised_with_train_statistics():
    workload = registry.import_workload("digits", "jax")
    splits = {split: workload._split_arrays(split, None)
              for split in ("train", "validation", "test")}
    assert [len(s["targets"]) for s in splits.values()] == [1200, 300, 297]
    assert splits["train"]["targets"][:12].tolist() == [2, 8, 2, 6, 6, 7, 1, 9, 8, 5, 2, 8]
    assert splits["test"]["targets"][:12].tolist() == [2, 2, 9, 8, 8, 3, 6, 0, 4, 4, 7, 6]
    assert splits["train"]["inputs"].mean() == pytest.approx(0.0, abs=1e-5)
    assert splits["train"]["inputs"].std() == pytest.approx(1.0, abs=1e-5)
    assert 0.2 < workload.train_mean < 0.4 and 0.2 < workload.train_stddev < 0.5


def test_mnist_reads_the_split_and_normalises_pixels(mnist_data_dir):
    workload = registry.import_workload("mnist", "jax")
    images, labels = mnist_data.synthetic_images(60_000, seed=0)
    validation = workload._split_arrays("validation", mnist_data_dir)
    np.testing.assert_array_equal(validation["targets"], labels[50_000:])
    expected = (images[50_000:, :, :, None] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(validation["inputs"], expected, rtol=1e-6, atol=1e-6)
    assert len(workload._split_arrays("train", mnist_data_dir)["targets"]) == 50_000
    assert len(workload._split_arrays("test", mnist_data_dir)["targets"]) == 10_000


def test_mnist_missing_files_raise_one_line_user_error(tmp_path):
    workload = registry.import_workload("mnist", "pytorch")
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(UserError) as error:
        workload._build_input_queue(rngs(0)[0], "train", str(tmp_path), 16)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "mnist") in message
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        assert name in message.split(";")[0]
    assert "train-labels-idx1-ubyte.gz" not in message.split(";")[0]
    assert "download the official MNIST files" in message


def _gzip_bytes(payload: bytes) -> bytes:
    return gzip.compress(payload, compresslevel=1)


CORRUPTIONS = {
    "not gzip": b"<html>404 Not Found</html>",
    "truncated gzip": _gzip_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60_000, 28, 28)
                                  + bytes(60_000 * 28 * 28))[:5_000],
    "not unsigned-byte IDX": _gzip_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 4)
                                         + bytes(16)),
    "data shorter than header": _gzip_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60_000, 28,
                                                                              28) + bytes(100)),
    "wrong number of images": _gzip_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 100, 28, 28)
                                          + bytes(100 * 28 * 28)),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_mnist_corrupt_file_raises_one_line_user_error(tmp_path, corruption):
    write_mnist(tmp_path / "mnist", num_train=10, num_test=10)
    images_file = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    images_file.write_bytes(CORRUPTIONS[corruption])
    workload = registry.import_workload("mnist", "jax")
    with pytest.raises(UserError) as error:
        workload._build_input_queue(rngs(0)[0], "train", str(tmp_path), 16)
    message = str(error.value)
    assert "\n" not in message and str(images_file) in message
    assert "official MNIST file" in message


def test_mnist_without_a_data_dir_raises_user_error():
    workload = registry.import_workload("mnist", "jax")
    with pytest.raises(UserError, match="data directory"):
        workload._build_input_queue(rngs(0)[0], "train", None, 16)


# Distributed PyTorch.

DDP_RANK_SCRIPT = """
import json, sys
import torch
from algoperf import frameworks, random_utils
from algoperf.workloads import registry

torch.set_num_threads(1)
frameworks.setup("pytorch")  # joins the gloo process group: LOCAL_RANK is set
workload = registry.import_workload("digits", "pytorch")
data_rng, _, model_rng, eval_rng = random_utils.split(random_utils.PRNGKey(5), 4)
model, _ = workload.init_model_fn(model_rng)
batch = next(workload._build_input_queue(data_rng, "train", None, 64))
results = workload.eval_model(1024, model, None, eval_rng, None, None, 0)
json.dump({"targets": batch["targets"].tolist(), "eval": results,
           "wrapped": type(model).__name__}, sys.stdout)
"""


def test_pytorch_ddp_ranks_take_their_slice_of_the_batch_and_sum_eval_metrics(
        one_torch_thread):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}
        processes.append(subprocess.Popen([sys.executable, "-c", DDP_RANK_SCRIPT], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        outputs.append(json.loads(stdout))

    workload = registry.import_workload("digits", "pytorch")
    data_rng, _, model_rng, eval_rng = rngs(5)
    model, _ = workload.init_model_fn(model_rng)
    batch = next(workload._build_input_queue(data_rng, "train", None, 64))
    single = workload.eval_model(1024, model, None, eval_rng, None, None, 0)
    assert [out["wrapped"] for out in outputs] == ["DistributedDataParallel"] * 2
    assert outputs[0]["targets"] + outputs[1]["targets"] == batch["targets"].tolist()
    for out in outputs:
        assert out["eval"] == pytest.approx(single, rel=1e-5)
