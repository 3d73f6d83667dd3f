"""Parquet shards of HR images, so a cluster reads a few large files instead of thousands of PNGs.

A shard has one row per image: ``id``, ``height``, ``width`` and ``pixels`` (the raw (H, W, 3) uint8 bytes, zstd),
which decode several times faster than PNG; each image is read as a zero-copy view of the shard's buffer. A shard
location is a folder or any pyarrow filesystem URI (``s3://bucket/prefix``); its shards are its sorted ``*.parquet``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from blindsr.data import corpus
from blindsr.data.images import DatasetError, HRImage, ImagePool, ImageReadError, list_image_files, read_image

log = logging.getLogger(__name__)

SHARD_SCHEMA = pa.schema(
    [("id", pa.string()), ("height", pa.int32()), ("width", pa.int32()), ("pixels", pa.large_binary())]
)
SHARD_PATTERN = "shard-{:05d}.parquet"


def is_shard_location(source: str) -> bool:
    """True for a URI (``scheme://…``), a ``.parquet`` file, or a local folder holding ``.parquet`` files."""
    if "://" in source:
        return True
    path = Path(source).expanduser()
    return path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")))


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """A local path (relative or absolute) or a filesystem URI → (filesystem, path inside it)."""
    if "://" in location:
        try:
            return pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"cannot open shard location {location}: {exc}") from exc
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def list_shards(location: str) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the sorted ``.parquet`` files of a shard location (a folder or a single file)."""
    fs, path = resolve(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DatasetError(f"shard location does not exist: {location}")
    if info.type == pafs.FileType.File:
        return fs, [path]
    files = sorted(
        f.path
        for f in fs.get_file_info(pafs.FileSelector(path, recursive=False))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet")
    )
    if not files:
        raise DatasetError(f"no .parquet shards in {location}; pack images with jobs/prepare_shards.py")
    return fs, files


def iter_source_images(
    source: str, split: str = "train", recursive: bool = True, skipped: dict[str, str] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """(id, (H, W, 3) uint8) for each readable image of a folder or of the corpus (``"corpus"``), one at a time.

    Unreadable files are logged, recorded in ``skipped`` (id → reason) and left out.
    """
    if source == "corpus":
        yield from corpus.load(split)
        return
    root = Path(source).expanduser()
    for path in list_image_files(root, recursive):
        rel = str(path.relative_to(root))
        try:
            yield rel, read_image(path)
        except ImageReadError as exc:
            log.warning("skipping unreadable image %s", exc)
            if skipped is not None:
                skipped[rel] = f"unreadable: {exc}"


def write_shards(
    images: Iterable[tuple[str, np.ndarray]], dest: str, shard_mb: float = 256.0, overwrite: bool = False
) -> list[str]:
    """Pack (id, (H, W, 3) uint8) images into ``dest/shard-NNNNN.parquet`` files of about ``shard_mb`` raw MB.

    Returns the written paths (inside dest's filesystem). Refuses a ``dest`` that already holds shards
    unless ``overwrite`` (then those are deleted first), so a shard set is never a mix of two packings.
    """
    fs, root = resolve(dest)
    if fs.get_file_info(root).type == pafs.FileType.Directory:
        old = [
            f.path for f in fs.get_file_info(pafs.FileSelector(root, recursive=False)) if f.path.endswith(".parquet")
        ]
        if old and not overwrite:
            raise DatasetError(f"{dest} already holds {len(old)} .parquet shards; pass overwrite=True to replace them")
        for path in old:
            fs.delete_file(path)
    fs.create_dir(root, recursive=True)
    written: list[str] = []
    rows: list[tuple[str, np.ndarray]] = []
    size = 0

    def flush() -> None:
        path = f"{root.rstrip('/')}/{SHARD_PATTERN.format(len(written))}"
        table = pa.table(
            {
                "id": [i for i, _ in rows],
                "height": [a.shape[0] for _, a in rows],
                "width": [a.shape[1] for _, a in rows],
                "pixels": [np.ascontiguousarray(a).tobytes() for _, a in rows],
            },
            schema=SHARD_SCHEMA,
        )
        pq.write_table(table, path, filesystem=fs, compression="zstd", compression_level=3)
        written.append(path)
        rows.clear()

    for image_id, pixels in images:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"{image_id}: expected (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")
        rows.append((image_id, pixels))
        size += pixels.nbytes
        if size >= shard_mb * 2**20:
            flush()
            size = 0
    if rows:
        flush()
    if not written:
        raise DatasetError(f"no image to pack into {dest}")
    return written


def _byte_views(column: pa.ChunkedArray) -> Iterator[np.ndarray | None]:
    """Zero-copy uint8 views of the values of a large_binary column (None for a null)."""
    for chunk in column.chunks:
        _, offsets, data = chunk.buffers()
        ends = np.frombuffer(offsets, np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        nulls = chunk.is_null().to_numpy(zero_copy_only=False)
        for i in range(len(chunk)):
            yield None if nulls[i] else raw[ends[i] : ends[i + 1]]


def iter_shard_images(location: str, skipped: dict[str, str]) -> Iterator[tuple[str, np.ndarray]]:
    """(id, zero-copy read-only (H, W, 3) uint8 view) for each image of a shard location, one shard in memory at a
    time. Unreadable shard files and rows whose byte count does not match their shape are logged and recorded in
    ``skipped``."""
    fs, files = list_shards(location)
    for path in files:
        try:
            table = pq.read_table(path, filesystem=fs, schema=SHARD_SCHEMA)
        except (pa.ArrowException, OSError) as exc:
            log.warning("skipping unreadable shard %s: %s", path, exc)
            skipped[path] = f"unreadable shard: {exc}"
            continue
        ids = table.column("id").to_pylist()
        heights, widths = table.column("height").to_numpy(), table.column("width").to_numpy()
        for i, (image_id, raw) in enumerate(zip(ids, _byte_views(table.column("pixels")), strict=True)):
            h, w = int(heights[i]), int(widths[i])
            got = 0 if raw is None else raw.size
            if got != h * w * 3:
                log.warning("skipping %s in %s: %d bytes for %dx%dx3", image_id, path, got, h, w)
                skipped[image_id] = f"corrupt: {got} bytes for {h}x{w}x3"
                continue
            view = raw.reshape(h, w, 3)
            view.flags.writeable = False  # a view of the shard's buffer, shared by every task cut from it
            yield image_id, view


def load_shards(location: str, min_size: int = 1) -> ImagePool:
    """Every image of a shard location as an ImagePool of zero-copy, read-only (H, W, 3) uint8 views.

    Unreadable shard files, corrupt rows and images smaller than ``min_size`` are logged once each and counted in
    ``pool.skipped``.
    """
    pool = ImagePool([], origin=location)
    for image_id, view in iter_shard_images(location, pool.skipped):
        h, w = view.shape[:2]
        if min(h, w) < min_size:
            log.warning("skipping %s: %dx%d is smaller than the %d px HR patch", image_id, h, w, min_size)
            pool.skipped[image_id] = f"too small: {h}x{w} < {min_size}"
            continue
        pool.images.append(HRImage(image_id, view))
    return pool.checked(f"no usable image in the shards of {location}")
