"""fastmri: SSIM against scikit-image's, the per-slice pipeline against scipy's orthonormal
centred FFT, the undersampling mask, and preparation with AlgoPerf's split.

The model, parity and API are covered for every variant by the conformance and parity suites.
"""

from __future__ import annotations

import tarfile

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import torch
from skimage.metrics import structural_similarity

from algoperf.datasets import fastmri as fastmri_data
from algoperf.datasets.manifest import load as load_manifest
from algoperf.errors import UserError
from algoperf.workloads import registry
from algoperf.workloads.fastmri import input_pipeline
from algoperf.workloads.fastmri.fastmri_jax import ssim as jax_ssim
from algoperf.workloads.fastmri.fastmri_pytorch import ssim as torch_ssim


def _images(seed: int, count: int = 3, shape: tuple[int, int] = (40, 36)):
    random = np.random.RandomState(seed)
    smooth = scipy.ndimage.gaussian_filter(random.rand(count, *shape), (0, 2, 2))
    noisy = smooth + 0.05 * random.randn(count, *shape)
    return smooth.astype(np.float32), noisy.astype(np.float32)


# SSIM.


def test_uniform_filter_is_scipys_with_mirrored_edges():
    images, _ = _images(0)
    expected = scipy.ndimage.uniform_filter(images.astype(np.float64), size=(1, 7, 7),
                                            mode="reflect")
    np.testing.assert_allclose(np.asarray(jax_ssim.uniform_filter(jnp.asarray(images))),
                               expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(torch_ssim.uniform_filter(torch.from_numpy(images)).numpy(),
                               expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("framework", ["jax", "pytorch"])
def test_ssim_is_scikit_images_with_algoperfs_window_constants_and_data_range(framework):
    """De-normalised by mean and std, data range the volume maximum (1 for a 0: padding)."""
    targets, outputs = _images(1)
    mean = np.array([0.5, -1.0, 2.0], np.float32)
    std = np.array([2.0, 0.5, 1.5], np.float32)
    volume_max = np.array([3.0, 0.0, 7.5], np.float32)
    if framework == "jax":
        values = np.asarray(jax_ssim.ssim(*map(jnp.asarray, (outputs, targets, mean, std,
                                                              volume_max))))
    else:
        values = torch_ssim.ssim(*map(torch.from_numpy, (outputs, targets, mean, std,
                                                          volume_max))).numpy()
    for i in range(3):
        expected = structural_similarity(
            (targets[i] * std[i] + mean[i]).astype(np.float64),
            (outputs[i] * std[i] + mean[i]).astype(np.float64),
            win_size=7, K1=0.01, K2=0.03, use_sample_covariance=True, gaussian_weights=False,
            data_range=volume_max[i] or 1.0)
        assert values[i] == pytest.approx(expected, abs=2e-5), i


def test_ssim_is_one_for_identical_images_and_below_for_others():
    targets, outputs = _images(2, count=2)
    ones = np.ones(2, np.float32)
    same = np.asarray(jax_ssim.ssim(jnp.asarray(targets), jnp.asarray(targets),
                                    jnp.zeros(2), jnp.asarray(ones), jnp.asarray(ones)))
    np.testing.assert_allclose(same, 1.0, atol=1e-5)
    other = np.asarray(jax_ssim.ssim(jnp.asarray(outputs), jnp.asarray(targets),
                                     jnp.zeros(2), jnp.asarray(ones), jnp.asarray(ones)))
    assert ((-1.0 <= other) & (other < 0.99)).all()


# The per-slice pipeline.


def test_column_mask_keeps_the_centre_and_a_quarter_of_the_columns():
    mask = input_pipeline.column_mask(368, np.random.default_rng(0))
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    num_low, pad = int(np.float32(368) * np.float32(0.08)), (368 - 29 + 1) // 2
    assert num_low == 29 and mask[pad:pad + num_low].all()
    kept = np.mean([input_pipeline.column_mask(368, np.random.default_rng(s)).mean()
                    for s in range(200)])
    assert kept == pytest.approx(0.25, abs=0.01)  # acceleration 4
    np.testing.assert_array_equal(mask, input_pipeline.column_mask(368, np.random.default_rng(0)))


def test_process_slice_is_the_normalised_magnitude_of_the_orthonormal_centred_ifft():
    random = np.random.RandomState(3)
    kspace = (random.randn(64, 44) + 1j * random.randn(64, 44)).astype(np.complex64)
    target = random.rand(32, 32).astype(np.float32)
    example = input_pipeline.process_slice(kspace, target, 2.5, np.random.default_rng(7))
    mask = input_pipeline.column_mask(44, np.random.default_rng(7))
    image = scipy.fft.fftshift(scipy.fft.ifft2(scipy.fft.ifftshift(kspace * mask),
                                               norm="ortho"))
    magnitude = np.abs(image[16:48, 6:38])
    mean, std = magnitude.mean(), magnitude.std()
    np.testing.assert_allclose(example["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(example["std"], std, rtol=1e-5)
    np.testing.assert_allclose(example["inputs"], np.clip((magnitude - mean) / std, -6, 6),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(example["targets"], np.clip((target - mean) / std, -6, 6),
                               rtol=1e-4, atol=1e-5)
    assert example["volume_max"] == np.float32(2.5)


def test_inputs_and_targets_are_clipped_to_six_standard_deviations():
    kspace = np.zeros((64, 44), np.complex64)
    kspace[32, 22] = 1.0  # a constant image
    kspace[30, 20] = 0.01
    target = np.zeros((32, 32), np.float32)
    target[0, 0] = 1e6
    example = input_pipeline.process_slice(kspace, target, 1.0, np.random.default_rng(0))
    assert example["targets"].max() == 6.0 and np.abs(example["inputs"]).max() <= 6.0


def test_train_masks_are_seeded_per_example_and_eval_masks_fixed(tmp_path):
    fastmri_data.write_synthetic(tmp_path, num_train=16, num_test=8)
    slices = input_pipeline.Slices(tmp_path / "fastmri", "train")
    first, again = slices.example(3, seed=11), slices.example(3, seed=11)
    np.testing.assert_array_equal(first["inputs"], again["inputs"])
    assert not np.array_equal(first["inputs"], slices.example(3, seed=12)["inputs"])
    eval_slices = input_pipeline.Slices(tmp_path / "fastmri", "validation")
    kspace, target, volume_max = fastmri_data.read_slice(
        tmp_path / "fastmri" / eval_slices.entries[5][0], eval_slices.entries[5][1])
    expected = input_pipeline.process_slice(kspace, target, volume_max,
                                            np.random.default_rng(input_pipeline.EVAL_SEED))
    np.testing.assert_array_equal(eval_slices.example(5, None)["inputs"], expected["inputs"])


def test_training_batches_are_seeded_and_evaluation_covers_each_slice_once(tmp_path):
    fastmri_data.write_synthetic(tmp_path, num_train=24, num_test=20)
    workload = registry.import_workload("fastmri", "jax")
    batches = [workload._build_input_queue(np.array([0, 5], np.uint32), "train",
                                           str(tmp_path), 8) for _ in range(2)]
    for _ in range(4):  # across an epoch boundary
        a, b = next(batches[0]), next(batches[1])
        np.testing.assert_array_equal(np.asarray(a["inputs"]), np.asarray(b["inputs"]))
    queue = workload._build_input_queue(None, "validation", str(tmp_path), 8,
                                        repeat_final_dataset=False)
    weights = np.concatenate([np.asarray(batch["weights"]) for batch in queue])
    np.testing.assert_array_equal(weights, (np.arange(24) < 20).astype(np.float32))
    assert workload.num_validation_examples == workload.num_test_examples == 20


# Preparation and the split.


def _archive(path, folder: str, names: list[str], tmp_path) -> None:
    source = tmp_path / f"src_{folder}"
    for seed, name in enumerate(names):
        fastmri_data.write_volume(source / folder / name,
                                  *fastmri_data.synthetic_volume(2, (16, 12), (8, 8), seed))
    with tarfile.open(path, "w:xz") as archive:
        archive.add(source / folder, arcname=folder)


def test_prepare_extracts_the_archives_and_splits_validation_at_the_first_100_volumes(
        tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    train = [f"file{i:04d}.h5" for i in range(3)]
    val = [f"file{i:04d}.h5" for i in (9, *range(100, 202))]  # 103 volumes
    _archive(raw / "knee_singlecoil_train.tar.xz", "singlecoil_train", train, tmp_path)
    _archive(raw / "knee_singlecoil_val.tar.xz", "singlecoil_val", val, tmp_path)
    summary = fastmri_data.prepare(raw, out, load_manifest("fastmri"))
    assert summary == {"examples": {"train": 6, "validation": 200, "test": 6}}
    volumes = fastmri_data.volumes(out)
    assert list(volumes["validation"]) == [f"knee_singlecoil_val/{n}" for n in sorted(val)[:100]]
    assert list(volumes["test"]) == [f"knee_singlecoil_val/{n}" for n in sorted(val)[100:]]
    kspace, target, volume_max = fastmri_data.read_slice(
        out / "knee_singlecoil_train" / train[0], 1)
    assert kspace.shape == (16, 12) and target.shape == (8, 8) and volume_max > 0


def test_prepare_without_the_archives_says_where_to_get_them(tmp_path):
    with pytest.raises(UserError, match="knee_singlecoil_train.tar.xz.*fastmri.med.nyu.edu"):
        fastmri_data.prepare(tmp_path, tmp_path, load_manifest("fastmri"))
