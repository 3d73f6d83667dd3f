"""``degrade_many``: many (HR crops, spec) units degraded together: the k tasks of a training step at once.

Units with the same shape and pipeline path form a group, and each stage runs once per group with per-unit operators
stacked along a batch axis (banded axis matrices, a grouped strided or plain blur, the shared resize); ``cv2_cubic``
and JPEG stay per unit. Noise is drawn per unit from its seed on the CPU, as in ``degrade``. On the CPU every unit's
pixels equal ``degrade(hr, spec, margin)`` exactly (tested); on CUDA within one level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from blindsr.degradations import banded, pipeline
from blindsr.degradations.blur import blur, blur_subsample
from blindsr.degradations.jpeg import jpeg
from blindsr.degradations.noise import gaussian_noise, quantize
from blindsr.degradations.pipeline import degrade
from blindsr.degradations.resize import imresize
from blindsr.degradations.spec import DegradationSpec


@dataclass(frozen=True)
class Unit:
    """n HR crops (n, 3, H, W) (uint8 or float 0–255) that share one degradation, with ``margin`` HR pixels of
    context on each side (a multiple of ``spec.scale``) that the LR drops."""

    hr: torch.Tensor
    spec: DegradationSpec
    margin: int


def _path(spec: DegradationSpec) -> str:
    if spec.downsampler == "cv2_cubic":
        return "cv2"
    if spec.kernel == "none" or spec.kernel_1d() is not None:
        return "separable"
    return "sfold_conv" if spec.downsampler == "sfold" else "blur_resize"


def _axes(units: Sequence[Unit], axis: int, out: int, m: int) -> tuple[torch.Tensor, tuple[banded.Tile, ...]]:
    """(g, out, in) stacked per-unit axis matrices along ``axis`` (−2 or −1) and one tiling that covers them all."""
    tile = banded.TILE_H if axis == -2 else banded.TILE_W
    pairs = [pipeline.axis(u.spec, u.hr.shape[axis], m, out, tile, torch.float32, u.hr.device) for u in units]
    return torch.stack([op for op, _ in pairs]), banded.merge([t for _, t in pairs])


def _blur_down(units: Sequence[Unit], path: str) -> torch.Tensor:
    """The group's blurred, down-sampled float LR, (g, n, 3, h, w) before noise."""
    first = units[0]
    s, m = first.spec.scale, first.margin // first.spec.scale
    g, (n, c, hh, ww) = len(units), first.hr.shape
    h_out, w_out = hh // s - 2 * m, ww // s - 2 * m
    if path == "separable":  # the crops are made float chunk by chunk inside
        (op_h, tiles_h), (op_w, tiles_w) = _axes(units, -2, h_out, m), _axes(units, -1, w_out, m)
        return banded.separable([u.hr for u in units], op_h, op_w, tiles_h, tiles_w)
    x = torch.empty((g, n, c, hh, ww), dtype=torch.float32, device=first.hr.device)
    for i, u in enumerate(units):
        banded.float_nchw(u.hr, out=x[i])  # one copy per unit (the crops may be views of a wider window)
    kernels = torch.stack([torch.from_numpy(u.spec.kernel_array()) for u in units])  # (g, k, k)
    flat = x.reshape(g, n * c, hh, ww)  # one kernel per unit: the unit is the batch entry, its crops the channels
    if path == "sfold_conv":
        out = blur_subsample(flat, kernels, s, first.spec.blur_border, m)
    else:
        out = imresize(blur(flat, kernels, first.spec.blur_border), 1.0 / s)[..., m : m + h_out, m : m + w_out]
    return out.reshape(g, n, c, h_out, w_out)


def _finish(units: Sequence[Unit], x: torch.Tensor) -> list[torch.Tensor]:
    """Each unit's noise (from its own seed, on the CPU, as ``degrade``) added to its (n, 3, h, w) slice of the group's
    float LR x in place, then rounded: unit by unit, so each step's data is still in cache."""
    lrs = []
    for u, lr in zip(units, x, strict=True):
        if u.spec.noise > 0:
            lr.add_(gaussian_noise(tuple(lr.shape), u.spec.noise, u.spec.seed).to(lr.device, non_blocking=True))
        lrs.append(quantize(lr, u.spec.rounding))
    return lrs


def degrade_many(units: Sequence[Unit]) -> list[torch.Tensor]:
    """Degrade every unit; returns one (n, 3, (H − 2·margin)/s, (W − 2·margin)/s) uint8 tensor per unit, in order,
    on the units' device. Equal to ``[degrade(u.hr, u.spec, u.margin) for u in units]``, batched."""
    groups: dict[tuple, list[int]] = {}
    for i, u in enumerate(units):
        if u.margin % u.spec.scale:
            raise ValueError(f"unit {i}: margin {u.margin} must be a multiple of the scale {u.spec.scale}")
        key = (_path(u.spec), tuple(u.hr.shape), u.margin, u.spec.scale, u.spec.blur_border, u.spec.rounding)
        groups.setdefault(key, []).append(i)
    out: list[torch.Tensor | None] = [None] * len(units)
    for (path, *_), members in groups.items():
        group = [units[i] for i in members]
        if path == "cv2":  # OpenCV on the CPU, one unit at a time (the official code's convention, by name)
            lrs = [degrade(u.hr, u.spec, u.margin) for u in group]
        else:
            lrs = _finish(group, _blur_down(group, path))
        for i, u, lr in zip(members, group, lrs, strict=True):
            out[i] = jpeg(lr, u.spec.jpeg_quality) if u.spec.jpeg_quality and path != "cv2" else lr
    return out  # type: ignore[return-value]
