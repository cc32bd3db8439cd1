"""SSIM as AlgoPerf scores fastmri, batched in JAX.

The definition is scikit-image's ``structural_similarity`` with a 7x7 uniform window, sample
covariance (49/48), K1 0.01, K2 0.03 and the mean over the map cropped by 3 pixels; AlgoPerf
adds that predictions and targets are first de-normalised (``x * std + mean``), that the
data range is each slice's volume maximum (1 where it is 0: padding rows), and that values
are clipped to [-1, 1]. Written here rather than called from scikit-image because it runs on
the accelerator over a batch inside the jitted eval step; tests/test_fastmri.py holds it to
scikit-image's on the same window and constants.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

WINDOW = 7
K1, K2 = 0.01, 0.03


def uniform_filter(images: jax.Array, size: int = WINDOW) -> jax.Array:
    """The mean over a ``size`` x ``size`` window of each (N, H, W) image, edges mirrored
    (``'symmetric'``: scipy's and scikit-image's ``'reflect'``), separably."""
    half = size // 2
    padded = jnp.pad(images, ((0, 0), (half, half), (half, half)), mode="symmetric")
    height, width = images.shape[1:]
    rows = sum(padded[:, i:i + height, :] for i in range(size)) / size
    return sum(rows[:, :, j:j + width] for j in range(size)) / size


def structural_similarity(x: jax.Array, y: jax.Array, data_range: jax.Array) -> jax.Array:
    """The mean SSIM of each pair of (N, H, W) images with data ranges (N,)."""
    num_points = WINDOW ** 2
    cov_norm = num_points / (num_points - 1)
    ux, uy = uniform_filter(x), uniform_filter(y)
    uxx, uyy, uxy = uniform_filter(x * x), uniform_filter(y * y), uniform_filter(x * y)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    data_range = data_range[:, None, None]
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (WINDOW - 1) // 2
    return jnp.mean(s[:, pad:-pad, pad:-pad], axis=(1, 2))


def ssim(outputs: jax.Array, targets: jax.Array, mean: jax.Array, std: jax.Array,
         volume_max: jax.Array) -> jax.Array:
    """AlgoPerf's per-example SSIM of normalised outputs and targets (N, H, W)."""
    mean, std = mean[:, None, None], std[:, None, None]
    volume_max = jnp.where(volume_max == 0, 1.0, volume_max)
    values = structural_similarity(outputs * std + mean, targets * std + mean, volume_max)
    return jnp.clip(values, -1.0, 1.0)
