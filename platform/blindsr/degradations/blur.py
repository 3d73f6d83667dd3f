"""Blur = 2-D cross-correlation with a kernel, with a selectable border.

``F.conv2d`` semantics (correlation, as DASR/MANet/BasicSR use): for the symmetric centred kernels this
equals convolution; for MANet's top-left shifted kernels the direction matters and matches their code.
Borders: ``reflect`` (mirror without repeating the edge, cv2 reflect-101 / torch ``reflect``),
``replicate`` (edge repeated) and ``circular`` (wrap). Output has the input's size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

Border = Literal["reflect", "replicate", "circular"]
_SCIPY_MODE = {"reflect": "mirror", "replicate": "nearest", "circular": "wrap"}


def _pads(k: int) -> tuple[int, int]:
    """(before, after) padding so that output size == input size; even kernels pad one less after."""
    return k // 2, k - 1 - k // 2


def blur_np(img: np.ndarray, kernel: np.ndarray, border: Border = "reflect") -> np.ndarray:
    """Correlate an (H, W) or (H, W, C) image with a (k, k) kernel; float64 output, same shape."""
    if border not in _SCIPY_MODE:
        raise ValueError(f"unknown blur border {border!r}; valid: {', '.join(_SCIPY_MODE)}")
    kernel = np.asarray(kernel, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    # scipy anchors a kernel at k//2, as torch does with (k//2, k-1-k//2) padding
    mode = _SCIPY_MODE[border]
    if img.ndim == 2:
        return ndimage.correlate(img, kernel, mode=mode)
    return np.stack([ndimage.correlate(img[..., c], kernel, mode=mode) for c in range(img.shape[-1])], axis=-1)


def _pad(x: torch.Tensor, k_h: int, k_w: int, border: Border) -> torch.Tensor:
    if border not in _SCIPY_MODE:
        raise ValueError(f"unknown blur border {border!r}; valid: {', '.join(_SCIPY_MODE)}")
    top, bottom = _pads(k_h)
    left, right = _pads(k_w)
    return F.pad(x, (left, right, top, bottom), mode=border)


def blur(x: torch.Tensor, kernel: torch.Tensor, border: Border = "reflect") -> torch.Tensor:
    """Blur a batch. x: (B, C, H, W) float; kernel: (k, k) shared, or (B, k, k) one per sample.

    Returns (B, C, H, W). One grouped convolution for the whole batch, no Python loop.
    """
    b, c, h, w = x.shape
    kernel = kernel.to(dtype=x.dtype, device=x.device)
    k = kernel.shape[-1]
    xp = _pad(x, k, k, border)
    if kernel.dim() == 2:
        out = F.conv2d(xp.reshape(b * c, 1, *xp.shape[-2:]), kernel[None, None])
        return out.reshape(b, c, h, w)
    if kernel.shape[0] != b:
        raise ValueError(f"per-sample kernels {tuple(kernel.shape)} do not match batch size {b}")
    weight = kernel[:, None].repeat_interleave(c, dim=0)  # (B·C, 1, k, k), sample-major like x
    out = F.conv2d(xp.reshape(1, b * c, *xp.shape[-2:]), weight, groups=b * c)
    return out.reshape(b, c, h, w)
