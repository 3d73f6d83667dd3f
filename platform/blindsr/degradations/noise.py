"""Additive white Gaussian noise on the 0–255 scale, then rounding and clipping to uint8 levels.

The official CMDSR code floors (``astype(uint8)``); by default we round, as DASR/MANet do (documented
deviation, ``DESIGN.md`` §4); ``rounding="floor"`` is the CMDSR code's convention by name. Noise is drawn
from an explicit seed on the CPU so the same seed gives the same pixels whether the rest of the pipeline
runs on CPU or CUDA.
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_noise(shape: tuple[int, ...], level: float, seed: int) -> torch.Tensor:
    """N(0, level²) noise of ``shape`` (0–255 units) from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32) * float(level)


def add_noise(x: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """x: (..., H, W) float on 0–255 → x + N(0, level²), still float and unclipped."""
    if level <= 0:
        return x
    return x + gaussian_noise(tuple(x.shape), level, seed).to(device=x.device, dtype=x.dtype)


def quantize(x: torch.Tensor, rounding: str = "round") -> torch.Tensor:
    """Round to the nearest integer level (or floor: clip-then-``astype(uint8)``) and clip to [0, 255]; uint8."""
    return (x.floor() if rounding == "floor" else x.round()).clamp_(0, 255).to(torch.uint8)


def quantize_np(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
