"""What an evaluation scores: test cases (an LR image, its HR and where they come from) of a protocol.

Generated protocols (``TEST_PRESETS``; ``docs/protocols.md``) degrade HR test images with fixed specs, cached per HR
digest when ``cache_dir`` is given; ``div2krk`` reads LR + GT pairs. A set is named after where it comes from.
CMDSR's oracle support is n seeded 32×32 crops of the *other* images of the set under the same degradation (the
image itself for a set of one)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blindsr.data.benchmarks import ALIASES, KernelPair, cached_lr, load_benchmark
from blindsr.data.images import DatasetError, HRImage
from blindsr.data.sources import load_source
from blindsr.degradations.pipeline import apply, mod_crop
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.degradations.spec import DegradationSpec
from blindsr.errors import InputError
from blindsr.models.cmdsr import SELF_SUPPORT_PATCH

PROTOCOLS = (*TEST_PRESETS, "div2krk")
LEGENDS = {  # what a protocol's column names mean, printed under its tables
    "cdsr9": "columns λ1_λ2_θ: the anisotropic Gaussian's covariance eigenvalues (variances along its axes, HR px²) "
    "and its rotation θ in radians (0.8 ≈ π/4), MANet's 9 test kernels",
    "cdsr9_noise15": "columns λ1_λ2_θ: MANet's 9 test kernels as in cdsr9 (covariance eigenvalues, HR px², and "
    "rotation in radians), then Gaussian noise σ 15 (of 255), clamped",
    "cmdsr": "columns: CMDSR Table I: simple = σ 0.2 + noise 15, middle = σ 2.6 + noise 15, severe = anisotropic "
    "(λ 4, 1, θ −0.5) + noise 50; 7×7 kernels, bicubic down-sampling",
    "gaussian8": "columns sigσ: Gaussian8 (IKC, DAN, DCLS, KDSR): 21×21 isotropic σ (HR px), bicubic down-sampling; "
    "the published figure is the mean",
    "dasr_iso": "columns sigσ: DASR Table 2's isotropic σ (HR px), 21×21, bicubic down-sampling (σ 0: bicubic alone)",
    "dasr_aniso": "columns n<noise>_λ1_λ2_θ: DASR's 9 anisotropic kernels (λ std devs along the axes, HR px; θ in "
    "degrees), 21×21, bicubic down-sampling, then Gaussian noise (of 255)",
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case:
    """One scored pair: lr (h, w, 3) uint8 and hr (s·h, s·w, 3) uint8; ``spec`` when the LR was generated."""

    set: str
    degradation: str
    image: str
    lr: np.ndarray
    hr: np.ndarray
    spec: DegradationSpec | None = None


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The centred ``side``² window of an (h, w, …) image (0: the whole image)."""
    if side <= 0:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top : top + side, left : left + side]


def set_name(source: str) -> str:
    """The test-set name of an image source: ``corpus``, or the folder's name."""
    if source == "corpus":
        return "corpus"
    if "://" in source:
        return source.rstrip("/").rsplit("/", 1)[-1]
    return Path(source).expanduser().resolve().name


def named_set(source: str, scale: int, limit: int | None = None) -> dict[str, list[HRImage]]:
    """``{set_name(source): images}``: the val split of the corpus or every image of a folder (at most ``limit``)."""
    images = list(load_source(source, split="val", min_size=8 * scale))
    return {set_name(source): images[:limit]}


def benchmark_sets(root: str | Path | None, names: Sequence[str] | None, scale: int) -> dict[str, list[HRImage]]:
    """The named benchmark sets under ``root`` (``names`` None: every one found there); without a root the
    corpus' val split as set ``corpus``. Raises DatasetError for a missing set, or when none is found."""
    if root is None:
        return named_set("corpus", scale)
    if names:
        return {name: load_benchmark(root, name, scale) for name in names}
    sets = {}
    for name in ALIASES:
        try:
            sets[name] = load_benchmark(root, name, scale)
        except DatasetError as e:
            log.info("%s", e)
    if not sets:
        raise DatasetError(f"no benchmark set ({', '.join(ALIASES)}) found under {root}")
    return sets


def _digest(images: list[np.ndarray]) -> str:
    h = hashlib.sha1()
    for img in images:
        h.update(str(img.shape).encode())
        h.update(np.ascontiguousarray(img).data)
    return h.hexdigest()[:10]


def protocol_specs(protocol: str, scale: int, degradations: Sequence[str] | None = None) -> dict[str, DegradationSpec]:
    """The degradations of a generated protocol at ×``scale`` (only the named ones when given), by name.
    Raises ValueError naming the valid choices for an unknown protocol or degradation."""
    if protocol not in TEST_PRESETS:
        raise InputError(f"protocol {protocol!r} generates no LR; generated protocols: {', '.join(TEST_PRESETS)}")
    specs = TEST_PRESETS[protocol](scale)
    unknown = [d for d in degradations or () if d not in specs]
    if unknown:
        raise InputError(f"protocol {protocol} x{scale} has no degradation {unknown}; it has {', '.join(specs)}")
    return {k: v for k, v in specs.items() if not degradations or k in degradations}


def generated_cases(
    protocol: str,
    scale: int,
    sets: Mapping[str, list[HRImage]],
    crop: int = 0,
    cache_dir: str | Path | None = None,
    degradations: Sequence[str] | None = None,
) -> list[Case]:
    """HR images centre-cropped to ``crop`` (0: whole) and mod-cropped, degraded by every spec of ``protocol``
    (or the named ``degradations`` of it)."""
    specs = protocol_specs(protocol, scale, degradations)
    cases = []
    for name, images in sets.items():
        hrs = [HRImage(img.id, mod_crop(centre_crop(img.pixels, crop), scale)) for img in images]
        folder = Path(cache_dir, f"{name}-{_digest([h.pixels for h in hrs])}") if cache_dir else None
        for deg, spec in specs.items():
            lrs = (
                cached_lr(hrs, spec, folder / f"{protocol}_x{scale}" / deg)
                if folder
                else [apply(h.pixels, spec) for h in hrs]
            )
            cases += [Case(name, deg, h.id, lr, h.pixels, spec) for h, lr in zip(hrs, lrs, strict=True)]
    return cases


def div2krk_cases(pairs: list[KernelPair], scale: int, crop: int = 0) -> list[Case]:
    """DIV2KRK pairs, optionally centre-cropped to ``crop`` HR pixels (the LR crop and its HR region)."""
    cases = []
    for p in pairs:
        lr, hr = p.lr, p.hr
        if crop > 0:
            side = crop // scale
            top, left = max(0, (lr.shape[0] - side) // 2), max(0, (lr.shape[1] - side) // 2)
            lr = lr[top : top + side, left : left + side]
            hr = hr[top * scale : (top + lr.shape[0]) * scale, left * scale : (left + lr.shape[1]) * scale]
        cases.append(Case("DIV2KRK", "given", p.id, lr, hr))
    return cases


def oracle_support(cases: list[Case], index: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n random crops (≤ 32²) from the LR of the other images sharing set and degradation with
    ``cases[index]`` (the image itself when it is alone) → (1, n, 3, p, p) float in [0, 1]."""
    me = cases[index]
    pool = [c.lr for c in cases if (c.set, c.degradation) == (me.set, me.degradation) and c.image != me.image]
    pool = pool or [me.lr]
    p = min(SELF_SUPPORT_PATCH, *(min(lr.shape[:2]) for lr in pool))
    crops = []
    for _ in range(n):
        lr = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        top = int(torch.randint(lr.shape[0] - p + 1, (1,), generator=generator))
        left = int(torch.randint(lr.shape[1] - p + 1, (1,), generator=generator))
        crops.append(torch.from_numpy(np.ascontiguousarray(lr[top : top + p, left : left + p])).permute(2, 0, 1))
    return torch.stack(crops)[None].float().div(255)
