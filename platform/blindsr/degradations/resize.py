"""MATLAB-compatible bicubic ``imresize`` (antialiasing on down-scaling) and s-fold subsampling.

The resize along one axis is a linear map, so it is expressed as a dense weight matrix
(out_len, in_len) computed once per (in_len, scale) and cached: MATLAB's cubic kernel (a = −0.5),
pixel mapping u = x/s + ½(1 − 1/s), kernel stretched by 1/s when down-scaling with antialiasing,
weights normalised per output pixel, symmetric mirror border. Output size = ceil(in · s).
Images are resized as ``Wh @ img @ Wwᵀ``: one batched matmul per axis on CPU or CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = −0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def output_size(in_len: int, scale: float) -> int:
    return math.ceil(in_len * scale)


@lru_cache(maxsize=256)
def resize_matrix(in_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense (out_len, in_len) float64 matrix of the 1-D MATLAB bicubic resize by ``scale``."""
    if in_len < 1:
        raise ValueError(f"cannot resize an axis of length {in_len}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out_len = output_size(in_len, scale)
    width = 4.0
    stretch = antialias and scale < 1
    if stretch:
        width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices, may fall outside
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if stretch else cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    # symmetric mirror (edge sample repeated), MATLAB: aux = [1:n, n:-1:1]
    period = 2 * in_len
    j = np.mod(idx.astype(np.int64) - 1, period)
    j = np.where(j < in_len, j, period - 1 - j)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), j.ravel()), w.ravel())
    return mat


def imresize_np(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image; float64 output (not rounded), any value range."""
    img = np.asarray(img, dtype=np.float64)
    wh = resize_matrix(img.shape[0], float(scale), antialias)
    ww = resize_matrix(img.shape[1], float(scale), antialias)
    out = np.tensordot(wh, img, axes=(1, 0))  # (h', W, C)
    out = np.tensordot(ww, out, axes=(1, 1))  # (w', h', C)
    return np.swapaxes(out, 0, 1)


_TENSORS: dict[tuple, torch.Tensor] = {}


def cached_tensor(
    key: tuple, build: Callable[[], np.ndarray], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``build()`` as a tensor on ``device``, made once per (key, dtype, device) (bounded cache)."""
    full = (key, dtype, device)
    t = _TENSORS.get(full)
    if t is None:
        if len(_TENSORS) > 1024:
            _TENSORS.clear()
        t = _TENSORS[full] = torch.from_numpy(build()).to(dtype=dtype, device=device)
    return t


def imresize(x: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize a batch (..., H, W) of float tensors → (..., ceil(H·s), ceil(W·s)); same device/dtype."""
    if not x.is_floating_point():
        raise TypeError(f"imresize needs a floating-point tensor, got {x.dtype}")
    mats = [
        cached_tensor(
            ("resize", n, float(scale), antialias),
            lambda n=n: resize_matrix(n, float(scale), antialias),
            x.dtype,
            x.device,
        )
        for n in x.shape[-2:]
    ]
    wh, ww = mats
    return torch.matmul(torch.matmul(wh, x), ww.T)


def subsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Direct s-fold subsampling ``x[..., ::s, ::s]`` (CDSR/MANet training and test sets)."""
    return x[..., ::scale, ::scale]
