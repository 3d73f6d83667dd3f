"""Separable blur → down-sample as one banded matrix per axis, applied tile by tile.

An isotropic blur then bicubic (or s-fold) ×1/s is, along each axis, one linear map (:func:`axis_operator`). Away
from the borders its rows are one composed kernel (about k + 4s taps for bicubic, k for s-fold) shifted by s; a
context margin (``spec.context()``) keeps every kept row there. :func:`separable` multiplies each tile of a few
output rows by only the input band its rows read: a small dense product per tile, a fraction of the dense
matrix's multiply-adds. Tiles are slices of the dense matrix and sum its nonzero terms in the same order, so the
result is the dense product's, bit for bit, where the BLAS sums along k (MKL: tested).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch

from blindsr.degradations.resize import resize_matrix

# output rows per tile: W axis 16 (one AVX-512 register), H axis 48 (fewer, larger products: 0.6 vs 1.0 ms at 12)
TILE_W, TILE_H = 16, 48
CHUNK_BYTES = 3 << 19  # float crops per chunk on the CPU: made float, then multiplied while still in cache
Tile = tuple[int, int, int, int]  # output rows [r0, r1) read input rows [lo, hi)


def border_index(idx: np.ndarray, n: int, border: str) -> np.ndarray:
    """Map (possibly out-of-range) integer indices onto [0, n) the way the blur border extends an axis."""
    if border == "replicate":
        return np.clip(idx, 0, n - 1)
    if border == "circular":
        return np.mod(idx, n)
    if border == "reflect":  # mirror without repeating the edge (reflect-101)
        if n == 1:
            return np.zeros_like(idx)
        period = 2 * (n - 1)
        j = np.mod(idx, period)
        return np.where(j < n, j, period - j)
    raise ValueError(f"unknown blur border {border!r}; valid: reflect, replicate, circular")


def _blur_matrix(in_len: int, kernel_1d: np.ndarray, border: str) -> np.ndarray:
    k = len(kernel_1d)
    rows = np.arange(in_len)[:, None] + np.arange(k)[None, :] - k // 2
    blur_m = np.zeros((in_len, in_len))
    cols = border_index(rows, in_len, border).ravel()
    np.add.at(blur_m, (np.repeat(np.arange(in_len), k), cols), np.tile(kernel_1d, in_len))
    return blur_m


def _down_matrix(in_len: int, downsampler: str, scale: int) -> np.ndarray:
    return resize_matrix(in_len, 1.0 / scale, True) if downsampler == "bicubic" else np.eye(in_len)[::scale]


def axis_operator(
    in_len: int, kernel_1d: tuple[float, ...], border: str, downsampler: str, scale: int, crop: tuple[int, int]
) -> np.ndarray:
    """(out, in_len) float64 matrix of one axis of "separable blur → down-sample → keep rows crop[0]:crop[1]".

    Weights below float32's smallest normal number (a narrow Gaussian's far taps: σ 0.3 gives 4e-42) are zero: no
    output feels them, and as float32 denormals they made every product with them ~17× slower on the CPU."""
    blur_m = _blur_matrix(in_len, np.asarray(kernel_1d), border)
    op = (_down_matrix(in_len, downsampler, scale) @ blur_m)[crop[0] : crop[1]]
    op[np.abs(op) < np.finfo(np.float32).tiny] = 0.0
    return op


@lru_cache(maxsize=256)
def tiles(
    in_len: int, kernel_size: int, border: str, downsampler: str, scale: int, crop: tuple[int, int], tile: int
) -> tuple[Tile, ...]:
    """Tiles of :func:`axis_operator`'s rows for any kernel of ``kernel_size`` taps: about ``tile`` rows each, and
    the input rows any such kernel can give weight: the blur's reach (through its border) of every input row the
    down-sampler reads for them."""
    down = _down_matrix(in_len, downsampler, scale)[crop[0] : crop[1]] != 0
    reach = np.arange(kernel_size) - kernel_size // 2
    out = down.shape[0]
    n = max(1, -(-out // tile))
    bounds = [round(j * out / n) for j in range(n + 1)]  # balanced, so no tile is a single row (a matrix-vector)
    result = []
    for r0, r1 in itertools.pairwise(bounds):
        cols = border_index(np.flatnonzero(down[r0:r1].any(axis=0))[:, None] + reach, in_len, border)
        result.append((r0, r1, int(cols.min()), int(cols.max()) + 1))
    return tuple(result)


def merge(per_unit: Sequence[tuple[Tile, ...]]) -> tuple[Tile, ...]:
    """One tiling for units stacked in one product: each tile's band is the union of the units' bands."""
    merged = []
    for same in zip(*per_unit, strict=True):  # the units' tiles of the same output rows
        merged.append((same[0][0], same[0][1], min(t[2] for t in same), max(t[3] for t in same)))
    return tuple(merged)


_SCRATCH = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A buffer for intermediate results; on the CPU one per (name, shape, dtype) and thread, reused call after call
    (it stays in cache: allocating the buffers per CMDSR task cost ~8% of its time)."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    key = (name, shape, dtype)
    if key not in buffers:
        if len(buffers) >= 16:
            buffers.clear()
        buffers[key] = torch.empty(shape, dtype=dtype)
    return buffers[key]


def float_nchw(hr: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """hr (N, C, H, W) uint8 or float, any strides → a contiguous float copy (float32 for uint8), into ``out`` if given.

    Channels-last uint8 on the CPU (a permuted (N, H, W, C) array, e.g. whole images) is split into uint8 planes
    by OpenCV first: torch's and numpy's strided conversions of that layout take several times as long."""
    if out is None:
        if hr.is_floating_point() and hr.is_contiguous():
            return hr
        out = torch.empty(hr.shape, dtype=hr.dtype if hr.is_floating_point() else torch.float32, device=hr.device)
    hwc = hr.permute(0, 2, 3, 1)
    if hr.dtype == torch.uint8 and hr.device.type == "cpu" and hwc.is_contiguous() and hr.shape[1] > 1:
        planes = scratch("planes", tuple(hr.shape), torch.uint8, hr.device)
        hr = torch.from_numpy(split_channels(hwc.numpy(), planes.numpy()))
    return out.copy_(hr)


def split_channels(nhwc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W, C) uint8 with rows of any stride → (N, C, H, W) C-contiguous, into ``out`` if given: OpenCV's
    split, several times faster than torch's or numpy's strided copy of this layout."""
    n, h, w, c = nhwc.shape
    out = np.empty((n, c, h, w), nhwc.dtype) if out is None else out
    if out.shape != (n, c, h, w) or not out.flags.c_contiguous:
        raise ValueError(f"split_channels needs a C-contiguous {(n, c, h, w)} output, got {out.shape}")
    for img, dst in zip(nhwc, out, strict=True):
        cv2.split(img, list(dst))
    return out


def separable(
    hrs: Sequence[torch.Tensor],
    op_h: torch.Tensor,
    op_w: torch.Tensor,
    tiles_h: tuple[Tile, ...],
    tiles_w: tuple[Tile, ...],
) -> torch.Tensor:
    """Each unit's (n, C, H, W) crops (uint8 or float, any strides) → (g, n, C, h, w) in the matrices' dtype: the W
    axis by its op_w (g, w, W), then the H axis by its op_h (g, h, H), in the order of the dense ``op_h @ (x @ op_wᵀ)``.

    On the CPU the crops are made float a few at a time, each chunk multiplied while it is still in cache."""
    first = hrs[0]
    (n, c, hh, ww), h, w = first.shape, op_h.shape[1], op_w.shape[1]
    dtype, device = op_w.dtype, first.device  # the crops are computed in the matrices' dtype
    out = torch.empty((len(hrs), n, c, h, w), dtype=dtype, device=device)
    rows = scratch("rows", (n * c * hh, w), dtype, device)  # one unit's W axis done, (n·C·H, w)
    per = min(n, max(1, CHUNK_BYTES // (c * hh * ww * 4))) if device.type == "cpu" else n
    chunk = scratch("chunk", (per, c, hh, ww), dtype, device)
    for u, hr in enumerate(hrs):
        bands = [(lo, hi, op_w[u, r0:r1, lo:hi].T, rows[:, r0:r1]) for r0, r1, lo, hi in tiles_w]
        for i0 in range(0, n, per):
            part = hr[i0 : i0 + per]
            x = part if part.dtype == dtype and part.is_contiguous() else float_nchw(part, out=chunk[: len(part)])
            x, a, b = x.view(-1, ww), i0 * c * hh, (i0 + len(part)) * c * hh
            for lo, hi, op_t, dst in bands:
                torch.mm(x[:, lo:hi], op_t, out=dst[a:b])
        y, dst = rows.view(n * c, hh, w), out[u].view(n * c, h, w)
        for r0, r1, lo, hi in tiles_h:  # (r1 − r0, hi − lo) @ (n·C, hi − lo, w), broadcast over the crops' planes
            torch.matmul(op_h[u, r0:r1, lo:hi], y[:, lo:hi], out=dst[:, r0:r1])
    return out
