"""DIV2K-shaped photographs made from the built-in corpus, for tests and benchmarks at the size users train on.

A corpus photograph resized to DIV2K's 2040 × 1356 with mild noise and a flip per round through the corpus, so
that it compresses and decodes like a photograph of that size. Made at run time, never committed. ``write_df2k``
lays such images out as DIV2K and Flickr2K ship (``DIV2K_train_HR/0001.png``, ``Flickr2K_HR/000001.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from blindsr.data import corpus

DIV2K_SIZE = (2040, 1356)  # (width, height) of most DIV2K training images
_SOURCES = corpus.SPLITS["all"]


def div2k_like(index: int, size: tuple[int, int] = DIV2K_SIZE) -> np.ndarray:
    """Photograph ``index``: (H, W, 3) uint8, a function of ``index`` alone."""
    base = Image.fromarray(corpus.image(_SOURCES[index % len(_SOURCES)])).resize(size, Image.Resampling.BICUBIC)
    noise = np.random.default_rng(index).normal(0.0, 3.0, (size[1], size[0], 3))
    pixels = np.clip(np.asarray(base, np.float32) + noise, 0, 255).astype(np.uint8)
    return pixels[:, ::-1] if (index // len(_SOURCES)) % 2 else pixels


def write_folder(folder: str | Path, count: int, first: int = 0, digits: int = 4, compress: int = 1) -> list[Path]:
    """Photographs ``first … first + count − 1`` as ``folder/0001.png …`` (``digits`` wide, numbered from 1)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(count):
        path = folder / f"{j + 1:0{digits}d}.png"
        Image.fromarray(div2k_like(first + j)).save(path, compress_level=compress)
        paths.append(path)
    return paths


def write_df2k(root: str | Path, div2k: int, flickr2k: int) -> Path:
    """A DF2K tree: ``root/DIV2K_train_HR/0001.png …`` and ``root/Flickr2K_HR/000001.png …``; returns ``root``."""
    root = Path(root)
    write_folder(root / "DIV2K_train_HR", div2k, digits=4)
    write_folder(root / "Flickr2K_HR", flickr2k, first=div2k, digits=6)
    return root
