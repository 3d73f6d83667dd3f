"""Blur = 2-D cross-correlation with a kernel, with a selectable border.

``F.conv2d`` semantics (correlation, as DASR/MANet/BasicSR use): for the symmetric centred kernels this
equals convolution; for MANet's top-left shifted kernels the direction matters and matches their code.
Borders: ``reflect`` (mirror without repeating the edge, cv2 reflect-101 / torch ``reflect``),
``replicate`` (edge repeated) and ``circular`` (wrap). :func:`blur` keeps the input's size;
:func:`blur_subsample` computes blur followed by s-fold subsampling as one strided convolution.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Border = Literal["reflect", "replicate", "circular"]
_SCIPY_MODE = {"reflect": "mirror", "replicate": "nearest", "circular": "wrap"}


def _pads(k: int) -> tuple[int, int]:
    """(before, after) padding so that output size == input size; even kernels pad one less after."""
    return k // 2, k - 1 - k // 2


def blur_np(img: np.ndarray, kernel: np.ndarray, border: Border = "reflect") -> np.ndarray:
    """Correlate an (H, W) or (H, W, C) image with a (k, k) kernel; float64 output, same shape."""
    from scipy import ndimage  # the tests' reference only: 0.3 s of every degradation actor's start

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


def blur_subsample(
    x: torch.Tensor, kernel: torch.Tensor, scale: int, border: Border = "reflect", margin: int = 0
) -> torch.Tensor:
    """``blur(x, kernel)[..., ::s, ::s]`` with its ``margin`` LR pixels cropped from each side, computed as one
    convolution of stride s over only the HR pixels the kept outputs read: s² fewer multiply-adds, and
    no border padding at all when the margin covers the kernel's reach.

    x: (B, C, H, W) float, H and W divisible by s; kernel: (k, k) shared by the batch, or (B, k, k) one per sample
    (one grouped convolution). Returns (B, C, H/s − 2·margin, W/s − 2·margin)."""
    b, c, h, w = x.shape
    s, m = scale, margin
    kernel = kernel.to(dtype=x.dtype, device=x.device)
    k = kernel.shape[-1]
    before, _after = _pads(k)
    h_out, w_out = h // s - 2 * m, w // s - 2 * m
    # output (i, j) reads HR rows s·i − before … s·i − before + k − 1 (same for columns)
    top, bottom = s * m - before, s * (m + h_out - 1) - before + k
    left, right = s * m - before, s * (m + w_out - 1) - before + k
    if top < 0 or left < 0 or bottom > h or right > w:  # the kernel reaches past the image: pad it
        x = _pad(x, k, k, border)
        top, bottom, left, right = top + before, bottom + before, left + before, right + before
    window = x[..., top:bottom, left:right]
    if kernel.dim() == 2:
        out = F.conv2d(window.reshape(b * c, 1, *window.shape[-2:]), kernel[None, None], stride=s)
    else:
        if kernel.shape[0] != b:
            raise ValueError(f"per-sample kernels {tuple(kernel.shape)} do not match batch size {b}")
        weight = kernel[:, None].repeat_interleave(c, dim=0)  # (B·C, 1, k, k), sample-major like x
        out = F.conv2d(window.reshape(1, b * c, *window.shape[-2:]), weight, stride=s, groups=b * c)
    return out.reshape(b, c, h_out, w_out)
