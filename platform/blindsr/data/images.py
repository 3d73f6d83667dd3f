"""Image files and pools of them: reading a file into RGB uint8 whatever its mode or bit depth, listing a folder's
image files, and the pool of HR images a source gives (with what was skipped and why).

16-bit → 8-bit (÷257, rounded), grayscale/palette/CMYK → RGB, alpha dropped, EXIF orientation applied.
Anything that cannot be decoded raises :class:`ImageReadError` naming the file and the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from blindsr.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


class ImageReadError(UserError, OSError):
    """An image file is unreadable, truncated, or of an unsupported kind."""


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


def to_rgb_uint8(arr: np.ndarray, where: str = "array") -> np.ndarray:
    """(H, W), (H, W, 1|2|3|4) array of uint8/uint16/bool → (H, W, 3) uint8."""
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        arr = np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageReadError(f"{where}: unsupported pixel type {arr.dtype} (expected 8- or 16-bit integers)")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (1, 2):  # gray, gray+alpha
        arr = np.repeat(arr[..., :1], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:  # RGBA: alpha dropped
        arr = arr[..., :3]
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageReadError(f"{where}: unsupported image shape {arr.shape}")
    return np.ascontiguousarray(arr)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or raise ImageReadError saying why."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()  # forces full decode: truncated files fail here, not later
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return to_rgb_uint8(np.asarray(im).astype(np.uint32), str(path))
            if im.mode == "F":
                raise ImageReadError(f"{path}: floating-point images are not supported")
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im).copy()
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow cannot decode some 16-bit-per-channel TIFFs; imageio (shipped with scikit-image) can.
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                import imageio.v3 as iio

                return to_rgb_uint8(iio.imread(path), str(path))
            except Exception:
                pass
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path)
    return path
