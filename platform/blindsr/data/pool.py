"""The node's HR pool: a source decoded once per node into a raw file on node-local disk, memory-mapped
read-only by every process there. N actors on a node share one copy of the pixels, and an actor (re)starts by
mapping the file. An entry of ``data.cache_dir`` is named by a digest of the source's listing (file names,
sizes, modification times): ``pixels`` holds each image as (H, W, 3) uint8 at a page-aligned offset and
``index.json`` their ids, shapes and offsets, written last. The first process on a node builds the entry
under a file lock, decoding in a child process; the others wait, then map it. No Ray.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blindsr.data import corpus
from blindsr.data.images import DatasetError, HRImage, ImagePool, ImageReadError, list_image_files, read_image
from blindsr.data.shards import is_shard_location, iter_shard_images, list_shards

log = logging.getLogger(__name__)

FORMAT = 1
PAGE = mmap.PAGESIZE
INDEX, PIXELS = "index.json", "pixels"


def default_cache_dir() -> Path:
    """``$BLINDSR_CACHE_DIR``, else ``<system temp>/blindsr-pool``: node-local on every usual cluster image."""
    return Path(os.environ.get("BLINDSR_CACHE_DIR") or Path(tempfile.gettempdir()) / "blindsr-pool")


@dataclass
class NodePool:
    """The mapped pool: ``pool`` (views into ``mapping``), each image's byte extent, and the raw size."""

    pool: ImagePool
    mapping: mmap.mmap
    extents: list[tuple[int, int]]  # (offset, bytes) of pool.images[i] in the file
    raw_bytes: int

    def advise(self, indices: Sequence[int], advice: int) -> None:
        """``madvise`` the pages of ``pool.images[indices]`` (``mmap.MADV_WILLNEED`` / ``MADV_DONTNEED``)."""
        for i in indices:
            offset, size = self.extents[i]
            self.mapping.madvise(advice, offset, size)


def entry_name(source: str, split: str = "train", recursive: bool = True) -> str:
    """The cache entry of a source: a readable stem and a digest of its listing (changes when a file does)."""
    if source == "corpus":
        import skimage

        stem, listing = f"corpus-{split}", ["corpus", split, skimage.__version__]
    elif is_shard_location(source):
        fs, files = list_shards(source)
        stem = Path(source.rstrip("/")).name or "shards"
        listing = ["shards", source, [(i.path, i.size, i.mtime_ns) for i in fs.get_file_info(files)]]
    else:
        root = Path(source).expanduser().resolve()
        files = list_image_files(root, recursive)
        stem = root.name or "folder"
        listing = ["folder", str(root), [(str(p.relative_to(root)), *_stat(p)) for p in files]]
    digest = hashlib.sha256(json.dumps([FORMAT, listing]).encode()).hexdigest()[:20]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)[:40]}-{digest}"


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def node_pool(
    source: str,
    split: str = "train",
    min_size: int = 1,
    recursive: bool = True,
    cache_dir: str | Path | None = None,
) -> NodePool:
    """The pool of ``source`` (a folder, shard location or ``"corpus"``) mapped from this node's cache, built first
    if this node has none. Images smaller than ``min_size`` are skipped (logged, counted), as unreadable ones are.

    Raises:
        DatasetError: a missing or empty source, no usable image, or a cache folder that cannot be written.
    """
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    entry = root / entry_name(source, split, recursive)
    if not (entry / INDEX).exists():
        _build_once(entry, source, split, recursive)
    return _map(entry, source, min_size)


def _build_once(entry: Path, source: str, split: str, recursive: bool) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        lock = open(entry.parent / f"{entry.name}.lock", "w")
    except OSError as exc:
        raise DatasetError(f"cannot use the pool cache folder {entry.parent} (data.cache_dir): {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process of this node may be building it
        if (entry / INDEX).exists():
            return
        for stale in entry.parent.glob(f"{entry.name}.tmp-*"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = entry.parent / f"{entry.name}.tmp-{os.getpid()}"
        log.info("decoding %s into the node's pool cache %s", source, entry)
        # a child process: the decoder's transient memory dies with it instead of staying in this actor's heap
        args = [sys.executable, "-m", "blindsr.data.pool", str(tmp), source, split, str(recursive)]
        child = subprocess.run(args, capture_output=True, text=True)
        if child.returncode:
            lines = child.stderr.strip().splitlines() or [f"exit code {child.returncode}"]
            raise DatasetError(f"building the pool cache of {source} failed: {lines[-1]}")
        os.rename(tmp, entry)


def build_entry(folder: str, source: str, split: str = "train", recursive: bool = True) -> None:
    """Decode ``source`` into ``folder`` (``pixels`` + ``index.json``, written last): the cache entry's format."""
    out = Path(folder)
    out.mkdir(parents=True)
    skipped: dict[str, str] = {}
    rows: list[tuple[str, int, int, int]] = []
    offset = 0
    try:
        with open(out / PIXELS, "wb") as f:
            for image_id, pixels in _decoded(source, split, recursive, skipped):
                h, w = pixels.shape[:2]
                f.write(memoryview(np.ascontiguousarray(pixels)).cast("B"))
                rows.append((image_id, h, w, offset))
                offset += h * w * 3
                pad = -offset % PAGE  # page-aligned images: one image's pages can be advised alone
                f.write(b"\0" * pad)
                offset += pad
    except OSError as exc:
        done = f"{offset / 2**30:.1f} GB written"
        raise DatasetError(f"cannot write the pool cache {out} (data.cache_dir; {done}): {exc}") from exc
    index = {"format": FORMAT, "source": source, "split": split, "images": rows, "skipped": skipped}
    (out / INDEX).write_text(json.dumps(index))


def _decoded(source: str, split: str, recursive: bool, skipped: dict[str, str]) -> Iterator[tuple[str, np.ndarray]]:
    """(id, (H, W, 3) uint8) in the source's order; a folder's files decoded by a pool of threads (Pillow releases
    the GIL while it decodes), at most two per thread ahead of the writer."""
    if source == "corpus":
        yield from corpus.load(split)
        return
    if is_shard_location(source):
        yield from iter_shard_images(source, skipped)
        return
    root = Path(source).expanduser()
    threads = max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        ahead: deque[tuple[Path, Future[np.ndarray | str]]] = deque()
        for path in [*list_image_files(root, recursive), None]:
            if path is not None:
                ahead.append((path, pool.submit(_read, path)))
            while ahead and (path is None or len(ahead) > 2 * threads):
                done, pixels = ahead[0][0], ahead.popleft()[1].result()
                rel = str(done.relative_to(root))
                if isinstance(pixels, str):
                    log.warning("skipping unreadable image %s", pixels)
                    skipped[rel] = f"unreadable: {pixels}"
                else:
                    yield rel, pixels


def _read(path: Path) -> np.ndarray | str:
    try:
        return read_image(path)
    except ImageReadError as exc:
        return str(exc)


def _map(entry: Path, source: str, min_size: int) -> NodePool:
    index = json.loads((entry / INDEX).read_text())
    pool = ImagePool([], origin=source, skipped=dict(index["skipped"]))
    extents: list[tuple[int, int]] = []
    with open(entry / PIXELS, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    for image_id, h, w, offset in index["images"]:
        if min(h, w) < min_size:
            log.warning("skipping %s: %dx%d is smaller than the %d px HR patch", image_id, h, w, min_size)
            pool.skipped[image_id] = f"too small: {h}x{w} < {min_size}"
            continue
        pixels = np.frombuffer(mapping, np.uint8, h * w * 3, offset).reshape(h, w, 3)  # read-only view
        pool.images.append(HRImage(image_id, pixels))
        extents.append((offset, h * w * 3))
    pool.checked(f"no usable image in {source}")
    assert mapping is not None
    return NodePool(pool, mapping, extents, sum(b for _, b in extents))


if __name__ == "__main__":  # the builder child of _build_once: FOLDER SOURCE SPLIT RECURSIVE
    try:
        build_entry(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "True")
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
