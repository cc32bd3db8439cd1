"""The cifar workload (ResNet-18 on CIFAR-10) in JAX and PyTorch: model size, augmentation,
split sizes, batch norm, and short runs on CIFAR-10 downloaded from a local server and
prepared by `algoperf datasets`.

ResNet-18 is slow on two CPU cores, so the fixture archive is small (5 x 32 training and 32
test images, in the real format) and runs take two steps at batch size 8.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from dataset_fixtures import FixtureServer, cifar_archive, write_manifest

from algoperf import random_utils, spec
from algoperf.datasets import content
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.cifar import input_pipeline as cifar_pipeline

ROOT = Path(__file__).resolve().parent.parent
PER_BATCH, NUM_TEST = 32, 32


@pytest.fixture(autouse=True)
def _numpy_rngs():
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    yield
    random_utils.set_framework(previous)


@pytest.fixture(scope="module")
def cifar_data_dir(tmp_path_factory) -> Path:
    """CIFAR-10 fixture downloaded and prepared through the CLI."""
    tmp = tmp_path_factory.mktemp("cifar")
    archive = tmp / "cifar-10-python.tar.gz"
    cifar_archive(archive, PER_BATCH, NUM_TEST)
    data_dir = tmp / "data"
    with FixtureServer({"/c/cifar-10-python.tar.gz": archive}) as server:
        fixture = write_manifest(tmp / "cifar10.json", "cifar10", {archive.name: archive},
                                 [f"{server.url}/c/"])
        result = subprocess.run(
            [sys.executable, "-m", "algoperf", "datasets", "download", "cifar10", "--data-dir",
             str(data_dir), "--manifest", str(fixture)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return data_dir


def test_resnet18_starts_as_algoperfs_and_marks_its_classifier_as_output():
    """Parameter count, names and shapes, and batch-norm statistics in both frameworks:
    tests/test_workload_conformance.py."""
    jax_workload = registry.import_workload("cifar", "jax")
    params, _ = jax_workload.init_model_fn(jax.random.PRNGKey(0))
    torch_workload = registry.import_workload("cifar", "pytorch")
    model, _ = torch_workload.init_model_fn(random_utils.PRNGKey(0))
    assert torch_workload.is_output_params("fc.weight") and jax_workload.is_output_params(
        "Dense_0")
    # Each block's second batch norm starts with zero scale, as in AlgoPerf.
    assert float(model.layer2[0].bn2.weight.detach().abs().sum()) == 0.0
    assert float(np.abs(params["ResNetBlock_3"]["BatchNorm_1"]["scale"]).sum()) == 0.0


def test_augmentation_crops_a_window_of_the_zero_padded_image_and_flips_half():
    images = np.random.RandomState(0).randint(1, 256, (400, 32, 32, 3)).astype(np.uint8)
    out = cifar_pipeline.augment(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for image, crop in zip(padded, out, strict=True):
        windows = [(top, left, flip) for top in range(9) for left in range(9)
                   for flip in (False, True)
                   if np.array_equal(crop, image[top:top + 32, left:left + 32][:, ::-1] if flip
                                     else image[top:top + 32, left:left + 32])]
        assert len(windows) == 1
        flips += windows[0][2]
    assert 150 < flips < 250


def test_split_sizes_are_algoperfs_and_follow_the_prepared_data(cifar_data_dir):
    workload = registry.import_workload("cifar", "pytorch")
    assert (workload.num_train_examples, workload.num_validation_examples,
            workload.num_test_examples, workload.num_eval_train_examples,
            workload.eval_batch_size) == (45_000, 5_000, 10_000, 5_120, 1_024)
    arrays = {split: workload._split_arrays(split, str(cifar_data_dir))
              for split in ("train", "validation", "test", "eval_train")}
    assert [len(a["targets"]) for a in arrays.values()] == [144, 16, 32, 144]
    assert arrays["train"]["inputs"].dtype == np.uint8  # normalised per batch


def test_one_seed_gives_the_same_normalised_batches_in_both_frameworks(cifar_data_dir):
    key = random_utils.PRNGKey(3)
    batches = {}
    for framework in ("jax", "pytorch"):
        workload = registry.import_workload("cifar", framework)
        queue = workload._build_input_queue(key, "train", str(cifar_data_dir), 8)
        batches[framework] = [next(queue) for _ in range(3)]
    for jax_batch, torch_batch in zip(batches["jax"], batches["pytorch"], strict=True):
        np.testing.assert_array_equal(np.asarray(jax_batch["inputs"]),
                                      torch_batch["inputs"].numpy().transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(np.asarray(jax_batch["targets"]),
                                      torch_batch["targets"].numpy())
    inputs = np.asarray(batches["jax"][0]["inputs"])
    assert inputs.dtype == np.float32 and -2.5 < inputs.min() and inputs.max() < 2.5


def test_batch_norm_statistics_change_only_when_asked(cifar_data_dir):
    for framework in ("jax", "pytorch"):
        workload = registry.import_workload("cifar", framework)
        rng = jax.random.PRNGKey(0) if framework == "jax" else random_utils.PRNGKey(0)
        params, state = workload.init_model_fn(rng)
        batch = next(workload._build_input_queue(random_utils.PRNGKey(1), "train",
                                                 str(cifar_data_dir), 4))

        def stats(params, state, framework=framework):
            if framework == "jax":
                return np.asarray(state["batch_stats"]["BatchNorm_init"]["mean"]).copy()
            return params.bn1.running_mean.detach().numpy().copy()

        before = stats(params, state)
        _, same = workload.model_fn(params, batch, state, spec.ForwardPassMode.TRAIN, None,
                                    update_batch_norm=False)
        np.testing.assert_array_equal(stats(params, same), before)
        logits, new = workload.model_fn(params, batch, state, spec.ForwardPassMode.TRAIN, None,
                                        update_batch_norm=True)
        assert logits.shape == (4, 10)
        assert not np.array_equal(stats(params, new), before)


def test_missing_cifar_data_says_how_to_download_it(tmp_path):
    workload = registry.import_workload("cifar", "jax")
    with pytest.raises(UserError) as error:
        workload._build_input_queue(random_utils.PRNGKey(0), "train", str(tmp_path), 8)
    message = str(error.value)
    assert "\n" not in message
    assert f"algoperf datasets download cifar10 --data-dir {tmp_path}" in message


SUBMISSION = '''"""NAdamW self-tuning at batch size 8 (eval batch 16), for two-step cifar runs."""
import importlib.util

_spec = importlib.util.spec_from_file_location("_nadamw", {base!r})
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
init_optimizer_state = _base.init_optimizer_state
update_params = _base.update_params
prepare_for_eval = getattr(_base, "prepare_for_eval", None)
data_selection = _base.data_selection


def get_batch_size(workload_name):
    return 8


def get_eval_batch_size(workload_name):
    return 16
'''


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_cifar_runs_two_steps_on_prepared_data_and_records_its_root(cifar_data_dir, tmp_path,
                                                                     framework):
    base = ROOT / "submissions" / "nadamw_self_tuning" / f"submission_{framework}.py"
    submission = tmp_path / f"submission_{framework}.py"
    submission.write_text(SUBMISSION.format(base=str(base)))
    result = subprocess.run(
        [sys.executable, "-m", "algoperf", "run", "--submission", str(submission), "--workload",
         "cifar", "--framework", framework, "--tuning-ruleset", "self", "--experiment-dir",
         str(tmp_path / "runs"), "--data-dir", str(cifar_data_dir), "--max-global-steps", "2",
         "--seed", "0", "--no-save-checkpoints"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    (events,) = (tmp_path / "runs").rglob("events.jsonl")
    records = [json.loads(line) for line in events.read_text().splitlines()]
    start = next(r for r in records if r["type"] == "run_start")
    assert start["data"]["dataset_manifest_root"] == content.recorded_root(cifar_data_dir,
                                                                           "cifar10")
    evals = [r["data"]["metrics"] for r in records if r["type"] == "eval"]
    assert evals and evals[-1]["validation/num_examples"] == 16
    assert evals[-1]["test/num_examples"] == NUM_TEST
    assert 0.0 <= evals[-1]["test/accuracy"] <= 1.0 and np.isfinite(evals[-1]["train/loss"])
    assert records[-1]["type"] == "run_end" and records[-1]["data"]["global_step"] == 2
    assert records[-1]["data"]["status"] == "completed"
