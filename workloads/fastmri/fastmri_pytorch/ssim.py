"""SSIM as AlgoPerf scores fastmri, batched in PyTorch: the definition of
``fastmri_jax.ssim`` (scikit-image's with a 7x7 uniform window, sample covariance, K1 0.01,
K2 0.03, a 3-pixel crop; de-normalised images, the volume maximum as data range, clipped to
[-1, 1]), on the device inside the eval step. tests/test_fastmri.py holds it to
scikit-image's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 7
K1, K2 = 0.01, 0.03


def _symmetric_index(length: int, half: int, device: torch.device) -> torch.Tensor:
    """Indices padding a length-``length`` axis by ``half`` mirrored values each side
    (numpy's ``'symmetric'``, which PyTorch's ``F.pad`` lacks)."""
    index = torch.arange(-half, length + half, device=device)
    index = torch.where(index < 0, -index - 1, index)
    return torch.where(index >= length, 2 * length - index - 1, index)


def uniform_filter(images: torch.Tensor, size: int = WINDOW) -> torch.Tensor:
    """The mean over a ``size`` x ``size`` window of each (N, H, W) image, edges mirrored."""
    half = size // 2
    height, width = images.shape[1:]
    padded = images[:, _symmetric_index(height, half, images.device)]
    padded = padded[:, :, _symmetric_index(width, half, images.device)]
    rows = F.avg_pool2d(padded[:, None], kernel_size=(size, 1), stride=1)
    return F.avg_pool2d(rows, kernel_size=(1, size), stride=1)[:, 0]


def structural_similarity(x: torch.Tensor, y: torch.Tensor,
                          data_range: torch.Tensor) -> torch.Tensor:
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
    return s[:, pad:-pad, pad:-pad].mean(dim=(1, 2))


def ssim(outputs: torch.Tensor, targets: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
         volume_max: torch.Tensor) -> torch.Tensor:
    """AlgoPerf's per-example SSIM of normalised outputs and targets (N, H, W)."""
    mean, std = mean[:, None, None], std[:, None, None]
    volume_max = torch.where(volume_max == 0, torch.ones_like(volume_max), volume_max)
    values = structural_similarity(outputs * std + mean, targets * std + mean, volume_max)
    return values.clamp(-1.0, 1.0)
