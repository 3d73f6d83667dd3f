"""Pictures people look at: kernel images and (HR | kernel | LR) grids of degradation tasks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

_LABEL_H = 14
_PAD = 4


def kernel_image(kernel: np.ndarray, size: int) -> np.ndarray:
    """(k, k) kernel → (size, size, 3) uint8 heat image (max = white), nearest-neighbour enlarged."""
    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.max() if k.max() > 0 else k
    gray = Image.fromarray(np.uint8(np.rint(k * 255))).resize((size, size), Image.NEAREST)
    g = np.asarray(gray, dtype=np.float64) / 255.0
    rgb = np.stack([np.clip(3 * g, 0, 1), np.clip(3 * g - 1, 0, 1), np.clip(3 * g - 2, 0, 1)], axis=-1)
    return np.uint8(np.rint(rgb * 255))


def _chw_to_hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x).transpose(1, 2, 0))


def task_grid(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> np.ndarray:
    """One row per task: HR patch | kernel | LR patch (nearest-enlarged to the HR size), with a label.

    rows: (hr (3, H, W) uint8, kernel (k, k), lr (3, h, w) uint8, label). Returns (H', W', 3) uint8.
    """
    if not rows:
        raise ValueError("task_grid needs at least one row")
    side = rows[0][0].shape[-1]
    width = 3 * side + 4 * _PAD
    height = len(rows) * (side + _LABEL_H + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for i, (hr, kernel, lr, label) in enumerate(rows):
        y = _PAD + i * (side + _LABEL_H + _PAD)
        lr_big = Image.fromarray(_chw_to_hwc(lr)).resize((side, side), Image.NEAREST)
        tiles = [Image.fromarray(_chw_to_hwc(hr)), Image.fromarray(kernel_image(kernel, side)), lr_big]
        for j, tile in enumerate(tiles):
            canvas.paste(tile, (_PAD + j * (side + _PAD), y))
        draw.text((_PAD, y + side + 1), label, fill=(230, 230, 230))
    return np.asarray(canvas)
