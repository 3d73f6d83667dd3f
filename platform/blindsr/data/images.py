"""Reading image files into RGB uint8 arrays, whatever their mode or bit depth.

16-bit → 8-bit (÷257, rounded), grayscale/palette/CMYK → RGB, alpha dropped, EXIF orientation applied.
Anything that cannot be decoded raises :class:`ImageReadError` naming the file and the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from blindsr.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


class ImageReadError(UserError, OSError):
    """An image file is unreadable, truncated, or of an unsupported kind."""


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
