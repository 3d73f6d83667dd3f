"""PSNR and SSIM as SR papers report them (BasicSR ``calculate_psnr/ssim(test_y_channel=True)``).

Inputs are (H, W, 3) RGB images on the 0–255 scale; the SR output must already be rounded and clipped
to uint8 (:func:`to_uint8`). ``shave`` pixels (usually = scale) are dropped on every side. On Y, the
luma is ITU-R BT.601: Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255, as float64 (not rounded).
SSIM is Wang et al.'s with MATLAB's settings: 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03,
L = 255, mean over the valid region.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from blindsr.degradations.kernels import gaussian_iso_1d

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_WINDOW = gaussian_iso_1d(11, 1.5)


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A [0, 1] float image, (3, H, W) tensor or (H, W, 3) array → rounded, clipped (H, W, 3) uint8."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
        if x.ndim == 3 and x.shape[0] in (1, 3):
            x = x.transpose(1, 2, 0)
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on 0–255 → (H, W) float64 BT.601 luma in [16, 235]."""
    return 16.0 + np.asarray(img, dtype=np.float64) @ _Y_WEIGHTS


def _prepare(sr: np.ndarray, hr: np.ndarray, shave: int, y_only: bool) -> tuple[np.ndarray, np.ndarray]:
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in shape")
    if shave:
        if 2 * shave >= min(sr.shape[:2]):
            raise ValueError(f"border shave {shave} leaves nothing of a {sr.shape[:2]} image")
        sr, hr = sr[shave:-shave, shave:-shave], hr[shave:-shave, shave:-shave]
    if y_only:
        return rgb_to_y(sr), rgb_to_y(hr)
    return sr.astype(np.float64), hr.astype(np.float64)


def psnr(sr: np.ndarray, hr: np.ndarray, shave: int = 0, y_only: bool = True) -> float:
    """PSNR in dB (peak 255) on Y (default) or on all RGB values; inf when identical."""
    a, b = _prepare(sr, hr, shave, y_only)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x: np.ndarray) -> np.ndarray:
        x = ndimage.correlate1d(x, _WINDOW, axis=0, mode="constant")
        x = ndimage.correlate1d(x, _WINDOW, axis=1, mode="constant")
        return x[5:-5, 5:-5]  # valid region only, like MATLAB/BasicSR

    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs at least 11×11 pixels after the shave, got {a.shape}")
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(sr: np.ndarray, hr: np.ndarray, shave: int = 0, y_only: bool = True) -> float:
    """SSIM on Y (default) or the mean of the per-channel RGB SSIMs."""
    a, b = _prepare(sr, hr, shave, y_only)
    if y_only:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[-1])]))
