"""HR image sources: a folder of images, Parquet shards or the built-in corpus, loaded into an :class:`ImagePool`.

Bad files never crash a load: each unreadable or too-small image is logged once and counted in
``ImagePool.skipped``; a missing or empty folder is a :class:`DatasetError` that names the path.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blindsr.data import corpus
from blindsr.data.images import IMAGE_SUFFIXES, ImageReadError, read_image
from blindsr.errors import UserError

log = logging.getLogger(__name__)


class DatasetError(UserError, FileNotFoundError):
    """A dataset location is missing, empty, or holds no usable image."""


@dataclass
class HRImage:
    id: str  # stable identifier: relative path, or corpus name
    pixels: np.ndarray  # (H, W, 3) uint8 RGB

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]


@dataclass
class ImagePool:
    """The HR images a sampler draws tasks from, plus what was skipped and why."""

    images: list[HRImage]
    origin: str
    skipped: dict[str, str] = field(default_factory=dict)  # id → reason

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> HRImage:
        return self.images[i]

    def summary(self) -> str:
        reasons = Counter(r.split(":")[0] for r in self.skipped.values())
        extra = ", ".join(f"{n} {why}" for why, n in reasons.items())
        return f"{len(self.images)} images from {self.origin}" + (
            f"; skipped {len(self.skipped)} ({extra})" if self.skipped else ""
        )

    def checked(self, empty_message: str) -> ImagePool:
        """Log what was skipped; raise ``DatasetError(empty_message (summary))`` when nothing is usable."""
        if self.skipped:
            log.warning("%s", self.summary())
        if not self.images:
            raise DatasetError(f"{empty_message} ({self.summary()})")
        return self


def list_image_files(root: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted image files (png, jpg, jpeg, bmp, tif, tiff; any case) under ``root``."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset folder does not exist: {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path is not a folder: {root}")
    pattern = root.rglob("*") if recursive else root.glob("*")
    files = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(
            f"no images found in {root} ({'recursively' if recursive else 'top level only'}); "
            f"expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return files


def _too_small(shape: tuple[int, int], min_size: int) -> bool:
    return min(shape) < min_size


def load_folder(root: str | Path, min_size: int = 1, recursive: bool = True) -> ImagePool:
    """Read every image under ``root``; skip (log + count) unreadable ones and those < ``min_size``."""
    root = Path(root).expanduser()
    files = list_image_files(root, recursive)
    pool = ImagePool([], origin=str(root))
    for path in files:
        rel = str(path.relative_to(root))
        try:
            img = read_image(path)
        except ImageReadError as exc:
            log.warning("skipping unreadable image %s", exc)
            pool.skipped[rel] = f"unreadable: {exc}"
            continue
        if _too_small(img.shape[:2], min_size):
            log.warning("skipping %s: %dx%d is smaller than the %d px HR patch", path, *img.shape[:2], min_size)
            pool.skipped[rel] = f"too small: {img.shape[0]}x{img.shape[1]} < {min_size}"
            continue
        pool.images.append(HRImage(rel, img))
    return pool.checked(f"no usable image in {root}: all {len(files)} files were skipped")


def load_corpus(split: str = "train", min_size: int = 1) -> ImagePool:
    """The built-in sample corpus (``skimage.data`` photographs), split ``train`` or ``val``."""
    pool = ImagePool([], origin=f"built-in corpus ({split})")
    for name, img in corpus.load(split):
        if _too_small(img.shape[:2], min_size):
            pool.skipped[name] = f"too small: {img.shape[0]}x{img.shape[1]} < {min_size}"
            continue
        pool.images.append(HRImage(name, img))
    if not pool.images:
        raise DatasetError(f"no corpus image of the {split} split is at least {min_size} px on each side")
    return pool


def load_source(source: str, split: str = "train", min_size: int = 1, recursive: bool = True) -> ImagePool:
    """``"corpus"`` → the built-in corpus split; a Parquet shard folder, ``.parquet`` file or filesystem URI
    (``s3://…``, see :mod:`blindsr.data.shards`) → its images; anything else is a folder path."""
    if source == "corpus":
        return load_corpus(split, min_size)
    from blindsr.data import shards  # here, not at the top: shards builds on this module

    if shards.is_shard_location(source):
        return shards.load_shards(source, min_size)
    return load_folder(source, min_size, recursive)
