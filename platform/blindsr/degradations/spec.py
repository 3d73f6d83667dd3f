"""``DegradationSpec``: every parameter of one degradation, explicit and serialisable.

A spec travels with each task row, so logs, previews and ablations can see exactly what was applied,
and ``pipeline.degrade(hr, spec)`` reproduces the same pixels from it (its ``seed`` fixes the noise).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from blindsr.degradations import kernels


@dataclass(frozen=True)
class DegradationSpec:
    scale: int
    kernel: Literal["iso", "aniso", "none"] = "iso"
    kernel_size: int = 15
    sigma: float = 0.0  # isotropic std (kernel == "iso")
    lambda1: float = 0.0  # anisotropic, in ``convention`` units
    lambda2: float = 0.0
    theta: float = 0.0  # radians
    convention: Literal["eig_var", "sigma_std"] = "eig_var"
    kernel_layout: Literal["centered", "shifted"] = "centered"
    blur_border: Literal["reflect", "replicate", "circular"] = "reflect"
    # bicubic: MATLAB imresize (antialiased); sfold: x[::s, ::s]; cv2_cubic: the official CMDSR training code's
    # uint8 OpenCV blur then cv2.resize(INTER_CUBIC), no antialiasing
    downsampler: Literal["bicubic", "sfold", "cv2_cubic"] = "bicubic"
    noise: float = 0.0  # AWGN std on the 0–255 scale
    jpeg_quality: int = 0  # 0: no JPEG
    seed: int = 0  # noise realisation
    rounding: Literal["round", "floor"] = "round"  # float LR → uint8 levels (the official CMDSR code floors)

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be ≥ 1, got {self.scale}")
        if self.kernel == "iso" and not self.sigma > 0:
            raise ValueError(f"isotropic kernel needs sigma > 0, got {self.sigma}")
        if self.kernel == "aniso" and not (self.lambda1 > 0 and self.lambda2 > 0):
            raise ValueError(f"anisotropic kernel needs λ1, λ2 > 0, got {self.lambda1}, {self.lambda2}")
        if self.kernel_layout == "centered" and self.kernel != "none" and self.kernel_size % 2 == 0:
            raise ValueError(f"a centred kernel needs an odd size, got {self.kernel_size}")
        if self.downsampler == "cv2_cubic" and self.blur_border == "circular":
            raise ValueError("downsampler cv2_cubic blurs with OpenCV, which has no circular border")
        if self.noise < 0:
            raise ValueError(f"noise level must be ≥ 0, got {self.noise}")
        if not (self.jpeg_quality == 0 or 1 <= self.jpeg_quality <= 100):
            raise ValueError(f"jpeg_quality must be 0 (off) or in [1, 100], got {self.jpeg_quality}")

    # ---- kernel -------------------------------------------------------------------------------
    def kernel_array(self) -> np.ndarray:
        """The (k, k) float64 blur kernel this spec applies (a 1×1 identity when kernel == 'none')."""
        k, s = self.kernel_size, self.scale
        if self.kernel == "none":
            return np.ones((1, 1))
        if self.kernel == "iso":
            if self.kernel_layout == "shifted":
                return kernels.gaussian_iso_shifted(k, s, self.sigma)
            return kernels.gaussian_iso(k, self.sigma)
        if self.kernel_layout == "shifted":
            return kernels.gaussian_aniso_shifted(k, s, self.lambda1, self.lambda2, self.theta, self.convention)
        return kernels.gaussian_aniso(k, self.lambda1, self.lambda2, self.theta, self.convention)

    def kernel_1d(self) -> np.ndarray | None:
        """1-D factor when the kernel is separable (isotropic), else None. (k,)"""
        if self.kernel != "iso":
            return None
        if self.kernel_layout == "shifted":
            inner = self.kernel_size - self.scale + 1
            g = np.zeros(self.kernel_size)
            g[:inner] = kernels.gaussian_iso_1d(inner, self.sigma)
            return g
        return kernels.gaussian_iso_1d(self.kernel_size, self.sigma)

    def context(self) -> int:
        """HR margin (a multiple of the scale) that makes a crop's degradation equal the full image's."""
        return context_margin(self.scale, self.kernel_size if self.kernel != "none" else 1, self.downsampler)

    # ---- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DegradationSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown DegradationSpec fields {sorted(unknown)}; valid: {sorted(names)}")
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}  # "int", "float" or a Literal (str)
        casts = {"int": int, "float": float}
        clean = {
            k: casts.get(kinds[k], lambda v: v)(v.item() if isinstance(v, np.generic) else v) for k, v in d.items()
        }
        return cls(**clean)

    def label(self) -> str:
        """Short ASCII description, e.g. ``iso sigma=2.60 | x4 bicubic | noise 15.0``."""
        if self.kernel == "iso":
            blur = f"iso sigma={self.sigma:.2f}"
        elif self.kernel == "aniso":
            unit = "var" if self.convention == "eig_var" else "std"
            blur = f"aniso lambda=({self.lambda1:.2f},{self.lambda2:.2f}) {unit} theta={self.theta:.2f}"
        else:
            blur = "no blur"
        parts = [blur, f"x{self.scale} {self.downsampler}"] + (["floor"] if self.rounding == "floor" else [])
        if self.noise > 0:
            parts.append(f"noise {self.noise:.1f}")
        if self.jpeg_quality:
            parts.append(f"jpeg q{self.jpeg_quality}")
        return " | ".join(parts)


def context_margin(scale: int, kernel_size: int, downsampler: str) -> int:
    """HR context margin of a degradation with a ``kernel_size`` blur (1: none) and ``downsampler``: the kernel's
    half width plus the cubic filter's support (2·s; none for s-fold), rounded up to a multiple of the scale.
    The largest margin of a distribution is this with its kernel size (``sampling.max_context``)."""
    resampler = 2 * scale if downsampler != "sfold" else 0  # cubic support · s
    return math.ceil((kernel_size // 2 + resampler) / scale) * scale
