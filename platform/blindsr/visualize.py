"""Pictures people look at: kernel images, (HR | kernel | LR) task grids, (LR | SR | HR) sample grids."""

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


def grid(rows: Sequence[tuple[Sequence[np.ndarray], str]]) -> np.ndarray:
    """Rows of (H, W, 3) uint8 tiles with a label under each row; every tile is nearest-enlarged to the
    size of the row's largest tile (so an LR patch shows its pixels next to SR and HR)."""
    if not rows:
        raise ValueError("grid needs at least one row")
    sizes = [(max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)) for tiles, _ in rows]
    width = max(len(tiles) * (w + _PAD) + _PAD for (tiles, _), (_, w) in zip(rows, sizes, strict=True))
    height = sum(h + _LABEL_H + _PAD for h, _ in sizes) + _PAD
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    y = _PAD
    for (tiles, label), (h, w) in zip(rows, sizes, strict=True):
        for j, tile in enumerate(tiles):
            canvas.paste(Image.fromarray(tile).resize((w, h), Image.NEAREST), (_PAD + j * (w + _PAD), y))
        draw.text((_PAD, y + h + 1), label, fill=(230, 230, 230))
        y += h + _LABEL_H + _PAD
    return np.asarray(canvas)


def task_grid(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> np.ndarray:
    """One row per task: HR patch | kernel | LR patch (nearest-enlarged to the HR size), with a label.

    rows: (hr (3, H, W) uint8, kernel (k, k), lr (3, h, w) uint8, label). Returns (H', W', 3) uint8.
    """
    if not rows:
        raise ValueError("task_grid needs at least one row")
    return grid(
        [
            ((_chw_to_hwc(hr), kernel_image(kernel, hr.shape[-1]), _chw_to_hwc(lr)), label)
            for hr, kernel, lr, label in rows
        ]
    )
