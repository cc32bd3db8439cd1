"""The fastMRI input pipeline: one example per slice, undersampled and reconstructed in numpy.

AlgoPerf's per-slice processing (its ``_process_example``), step by step:

1. a column mask over the W k-space columns: the ``int(0.08 W)`` centre columns, starting at
   ``(W - n_low + 1) // 2``, and each column kept with probability
   ``(W / 4 - n_low) / (W - n_low)`` (acceleration 4); all in float32 as AlgoPerf's;
2. the masked k-space, inverse-FFT'd with the centring shifts (``ifftshift``, ``ifft2``,
   ``fftshift``) and scaled by ``sqrt(640 W)``;
3. the centre crop to the target's shape (320 x 320) and the complex magnitude;
4. normalised by the image's own mean and (population) standard deviation and clipped to
   [-6, 6]; the target normalised with the same mean and std, then clipped.

Each example carries ``inputs``, ``targets``, ``mean``, ``std`` and ``volume_max``. The mask's
random draw is seeded per example: for 'train' and 'eval_train' by the data seed and the
slice's index in the split (so a slice keeps its mask across epochs, as in AlgoPerf), for
'validation' and 'test' by the fixed seed 0 (one mask per k-space width, as AlgoPerf's
``PRNGKey(0)``). The draws come from numpy's generator, not TensorFlow's stateless Philox, so
the masks are distributed as AlgoPerf's but are not the same masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from algoperf.datasets import fastmri as fastmri_data
from algoperf.workloads.common import pipeline

CENTER_FRACTION = np.float32(0.08)
ACCELERATION = np.float32(4.0)
CLIP = 6.0
EVAL_SEED = 0


def column_mask(num_cols: int, random: np.random.Generator) -> np.ndarray:
    """The float32 (W,) undersampling mask: centre columns and random others."""
    cols = np.float32(num_cols)
    num_low = int(cols * CENTER_FRACTION)
    mask = np.zeros(num_cols, np.float32)
    pad = (num_cols - num_low + 1) // 2
    mask[pad:pad + num_low] = 1.0
    prob = (cols / ACCELERATION - np.float32(num_low)) / (cols - np.float32(num_low))
    return np.maximum(mask, (random.random(num_cols, np.float32) < prob).astype(np.float32))


def process_slice(kspace: np.ndarray, target: np.ndarray, volume_max: float,
                  random: np.random.Generator) -> dict[str, np.ndarray]:
    """One example from a slice's k-space (640, W) and target (320, 320)."""
    mask = column_mask(kspace.shape[1], random)
    masked = kspace * mask[None, :].astype(np.complex64)
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(masked, axes=(0, 1))), axes=(0, 1))
    image = image.astype(np.complex64) * np.complex64(np.sqrt(np.float32(kspace.size)))
    top = (kspace.shape[0] - target.shape[0]) // 2
    left = (kspace.shape[1] - target.shape[1]) // 2
    image = np.abs(image[top:top + target.shape[0], left:left + target.shape[1]])
    image = image.astype(np.float32)
    mean, std = image.mean(dtype=np.float32), image.std(dtype=np.float32)
    return {"inputs": np.clip((image - mean) / std, -CLIP, CLIP),
            "targets": np.clip((target - mean) / std, -CLIP, CLIP).astype(np.float32),
            "mean": np.float32(mean), "std": np.float32(std),
            "volume_max": np.float32(volume_max)}


class Slices:
    """The slices of one split: (volume file, slice index) in volume order."""

    def __init__(self, directory: Path, split: str) -> None:
        stored = "train" if split == "eval_train" else split
        self.directory = Path(directory)
        self.entries = [(name, index) for name, count in
                        fastmri_data.volumes(directory)[stored].items()
                        for index in range(count)]

    def __len__(self) -> int:
        return len(self.entries)

    def example(self, position: int, seed: int | None) -> dict[str, np.ndarray]:
        """The processed slice at ``position``; its mask drawn from ``seed`` and the position,
        or with ``seed`` None from the fixed eval seed alone."""
        name, index = self.entries[position]
        kspace, target, volume_max = fastmri_data.read_slice(self.directory / name, index)
        entropy = EVAL_SEED if seed is None else [seed, position]
        return process_slice(kspace, target, volume_max, np.random.default_rng(entropy))


def _stack(examples: list[dict[str, np.ndarray]]) -> pipeline.Batch:
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def load_examples(slices: Slices, positions: np.ndarray, seed: int | None,
                  workers: int = 2) -> pipeline.Batch:
    """The examples at ``positions`` stacked (FFTs and reads run on ``workers`` threads)."""
    with ThreadPoolExecutor(workers) as pool:
        examples = list(pool.map(lambda p: slices.example(int(p), seed), positions))
    return _stack(examples)


def train_batches(slices: Slices, batch_size: int, seed: int,
                  workers: int = 2) -> Iterator[pipeline.Batch]:
    """Endless batches from seeded per-epoch permutations of the slices, the remainder of
    each epoch dropped; every example's mask seeded by ``seed`` and its position."""
    random_state = np.random.RandomState(seed)
    with ThreadPoolExecutor(workers) as pool:
        while True:
            order = random_state.permutation(len(slices))
            for start in range(0, len(slices) - batch_size + 1, batch_size):
                rows = order[start:start + batch_size]
                batch = _stack(list(pool.map(lambda p: slices.example(int(p), seed), rows)))
                batch["weights"] = np.ones(batch_size, np.float32)
                yield batch


def eval_arrays(slices: Slices, positions: np.ndarray | None = None,
                seed: int | None = None) -> pipeline.Batch:
    """Every example of an eval split (or those at ``positions``), processed once; masks
    from the fixed eval seed, or per example from ``seed``."""
    if positions is None:
        positions = np.arange(len(slices))
    return load_examples(slices, positions, seed)
