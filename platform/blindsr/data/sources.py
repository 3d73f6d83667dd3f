"""HR image sources: a folder of images, Parquet shards or the built-in corpus, loaded into an :class:`ImagePool`.

Bad files never crash a load: each unreadable or too-small image is logged once and counted in
``ImagePool.skipped``; a missing or empty folder is a :class:`DatasetError` that names the path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from blindsr.data import corpus
from blindsr.data.images import DatasetError, HRImage, ImagePool, ImageReadError, list_image_files, read_image

log = logging.getLogger(__name__)


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
