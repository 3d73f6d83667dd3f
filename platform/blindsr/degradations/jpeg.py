"""JPEG compression round trip with Pillow (libjpeg, 4:2:0 chroma subsampling, deterministic)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def jpeg_np(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode an (H, W, 3) uint8 RGB image at ``quality`` (1–95); returns (H, W, 3) uint8."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of a uint8 batch (N, 3, H, W) (on any device; coded on the CPU)."""
    arr = x.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([jpeg_np(a, quality) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)
