"""Readers for the usual SR benchmark layouts, and the on-disk cache of generated LR sets.

* Set5 / Set14 / B100 (alias BSD100, BSDS100) / Urban100: HR images in ``<root>/<name>/``, or one of its
  sub-folders ``HR``, ``GT``, ``GTmod12``, ``original``, or the ``image_SRF_<s>/*_HR.*`` layout. HR images are
  mod-cropped to the scale; LR images are generated per protocol and cached with their specs.
* DIV2KRK: ``gt/img_<i>_gt.png``, ``lr_x<s>/im_<i>.png``, ``gt_k_x<s>/kernel_<i>.mat``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blindsr.data.images import (
    IMAGE_SUFFIXES,
    DatasetError,
    HRImage,
    ImageReadError,
    list_image_files,
    read_image,
    write_png,
)
from blindsr.degradations.pipeline import apply, mod_crop
from blindsr.degradations.spec import DegradationSpec

log = logging.getLogger(__name__)

ALIASES = {
    "Set5": ("Set5", "set5"),
    "Set14": ("Set14", "set14"),
    "B100": ("B100", "BSD100", "BSDS100", "b100", "bsd100"),
    "Urban100": ("Urban100", "urban100"),
}
_HR_SUBDIRS = ("HR", "GT", "GTmod12", "original", "hr", "gt")


def benchmark_dir(root: str | Path, name: str) -> tuple[Path, str | None]:
    """Folder holding the HR images of benchmark ``name`` under ``root``, and a file-name filter."""
    root = Path(root).expanduser()
    if name not in ALIASES:
        raise DatasetError(f"unknown benchmark {name!r}; known: {', '.join(ALIASES)}")
    if not root.is_dir():
        raise DatasetError(f"benchmark root does not exist or is not a folder: {root}")
    for alias in ALIASES[name]:
        base = root / alias
        if not base.is_dir():
            continue
        for sub in _HR_SUBDIRS:
            if (base / sub).is_dir():
                return base / sub, None
        srf = sorted(base.glob("image_SRF_*"))
        if srf:
            return srf[0], r"_HR\."
        return base, None
    raise DatasetError(f"benchmark {name} not found under {root}: looked for {', '.join(ALIASES[name])}/")


def load_benchmark(root: str | Path, name: str, scale: int) -> list[HRImage]:
    """HR images of a benchmark set, mod-cropped to ``scale``; unreadable files are logged and skipped."""
    folder, pattern = benchmark_dir(root, name)
    files = list_image_files(folder, recursive=False)
    if pattern:
        files = [f for f in files if re.search(pattern, f.name)]
    images = []
    for f in files:
        try:
            images.append(HRImage(f.stem, mod_crop(read_image(f), scale)))
        except ImageReadError as exc:
            log.warning("skipping unreadable benchmark image %s", exc)
    if not images:
        raise DatasetError(f"no readable HR image in {folder}")
    return images


def cached_lr(images: list[HRImage], spec: DegradationSpec, cache_dir: str | Path) -> list[np.ndarray]:
    """LR images of ``images`` under ``spec``, generated once and kept in ``cache_dir`` with the spec.

    A cache whose ``spec.json`` differs from ``spec`` (or that lacks a file) is regenerated, so repeated
    evaluations compare the same pixels.
    """
    cache = Path(cache_dir)
    spec_file = cache / "spec.json"
    same = spec_file.is_file() and json.loads(spec_file.read_text()) == spec.to_dict()
    if not same:  # invalidate first: an interrupted regeneration must not pass for the old spec
        spec_file.unlink(missing_ok=True)
    out = []
    for img in images:
        path = cache / f"{img.id}.png"
        if same and path.is_file():
            try:
                lr = read_image(path)
                if lr.shape[0] * spec.scale == img.shape[0] and lr.shape[1] * spec.scale == img.shape[1]:
                    out.append(lr)
                    continue
            except ImageReadError:
                pass
        lr = apply(img.pixels, spec)
        write_png(path, lr)
        out.append(lr)
    spec_file.write_text(json.dumps(spec.to_dict(), indent=1))
    return out


@dataclass
class KernelPair:
    id: str
    hr: np.ndarray  # (H, W, 3) uint8, mod-cropped
    lr: np.ndarray  # (H/s, W/s, 3) uint8
    kernel: np.ndarray | None  # ground-truth kernel (k, k) float64, when present


def read_mat_kernel(path: Path) -> np.ndarray:
    """The single non-metadata array variable of a MATLAB .mat file, whatever its name."""
    from scipy.io import loadmat

    data = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    arrays = [v for v in data.values() if isinstance(v, np.ndarray) and v.ndim == 2]
    if len(arrays) != 1:
        raise DatasetError(f"{path}: expected one 2-D kernel variable, found {sorted(data)}")
    return arrays[0].astype(np.float64)


def load_div2krk(root: str | Path, scale: int) -> list[KernelPair]:
    """DIV2KRK pairs for ×2 or ×4, with their ground-truth kernels. A pair whose LR is not 1/s of its mod-cropped
    ground truth is skipped with one warning line naming both files, and the count is logged at the end."""
    root = Path(root).expanduser()
    gt_dir, lr_dir, k_dir = root / "gt", root / f"lr_x{scale}", root / f"gt_k_x{scale}"
    for d in (gt_dir, lr_dir):
        if not d.is_dir():
            raise DatasetError(f"DIV2KRK folder missing: {d} (expected gt/, lr_x{scale}/, gt_k_x{scale}/)")
    pairs, mismatched = [], 0
    for lr_path in sorted(p for p in lr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        m = re.fullmatch(r"im_(\d+)", lr_path.stem)
        if not m:
            continue
        i = m.group(1)
        gt_path = gt_dir / f"img_{i}_gt.png"
        if not gt_path.is_file():
            raise DatasetError(f"DIV2KRK: {lr_path} has no ground truth {gt_path}")
        hr, lr = mod_crop(read_image(gt_path), scale), read_image(lr_path)
        if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
            log.warning("DIV2KRK: skipping %s %s: ×%d does not match %s %s", lr_path, lr.shape[:2], scale, gt_path,
                        hr.shape[:2])  # fmt: skip
            mismatched += 1
            continue
        k_path = k_dir / f"kernel_{i}.mat"
        kernel = read_mat_kernel(k_path) if k_path.is_file() else None
        pairs.append(KernelPair(i, hr, lr, kernel))
    if mismatched:
        log.warning("DIV2KRK: skipped %d pair(s) whose sizes do not match, kept %d", mismatched, len(pairs))
    if not pairs:
        raise DatasetError(f"DIV2KRK: no usable im_<i> pair in {lr_dir} ({mismatched} size-mismatched)")
    return pairs
