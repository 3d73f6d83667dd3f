"""Named degradation settings of the papers.

Training distributions are ``DegradationConfig`` factories (what ``sample_spec`` draws from);
test sets are ordered ``{name: DegradationSpec}`` dicts of fixed degradations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from blindsr.degradations.config import DegradationConfig
from blindsr.degradations.spec import DegradationSpec

# ---- training distributions ------------------------------------------------------------------------


def cmdsr_train(scale: int = 4) -> DegradationConfig:
    """CMDSR §IV-A: 15×15 isotropic σ ∈ {0.2, 0.3, …, s}, MATLAB bicubic ×s, AWGN σ_N ~ U[0, 75]."""
    return DegradationConfig(
        kernel="iso",
        kernel_size=15,
        sigma_range=[0.2, float(scale)],
        sigma_step=0.1,
        kernel_layout="centered",
        blur_border="reflect",
        downsampler="bicubic",
        noise_range=[0.0, 75.0],
    )


def cmdsr_code_train(scale: int = 4) -> DegradationConfig:
    """The official CMDSR training code (``data_loader.py``), by name: σ ∈ {0.2, 0.3, …, 4.0} at every scale
    (``range_blur_sigma=3.8``), the uint8 crop blurred by ``cv2.GaussianBlur`` 15×15 and down-scaled by
    ``cv2.resize(INTER_CUBIC)`` (no antialiasing), integer noise levels ``randint(0, 75)``, floored to uint8."""
    return dataclasses.replace(
        cmdsr_train(scale),
        sigma_range=[0.2, 4.0],
        downsampler="cv2_cubic",
        noise_range=[0.0, 74.0],
        noise_step=1.0,
        rounding="floor",
    )


def cdsr_train(scale: int = 4, noise: float = 0.0) -> DegradationConfig:
    """CDSR/MANet: 21×21 anisotropic (variances) λ1 ~ U(0.175s, 2.5s), λ2 ~ U(0.175s, λ1), θ ~ U(0, π),
    shifted kernel, replicate border, s-fold subsampling; optional AWGN U(0, ``noise``)."""
    lo, hi = 0.175 * scale, 2.5 * scale
    return DegradationConfig(
        kernel="aniso",
        kernel_size=21,
        convention="eig_var",
        lambda1_range=[lo, hi],
        lambda2_range=[lo, hi],
        lambda2_le_lambda1=True,
        theta_range=[0.0, math.pi],
        kernel_layout="shifted",
        blur_border="replicate",
        downsampler="sfold",
        noise_range=[0.0, float(noise)],
    )


def dasr_iso(scale: int = 4) -> DegradationConfig:
    """DASR isotropic: 21×21, σ ~ U(0.2, {2, 3, 4} for ×{2, 3, 4}), reflect border, bicubic, no noise."""
    return DegradationConfig(
        kernel="iso",
        kernel_size=21,
        sigma_range=[0.2, {2: 2.0, 3: 3.0}.get(scale, 4.0)],
        sigma_step=0.0,
        blur_border="reflect",
        downsampler="bicubic",
        noise_range=[0.0, 0.0],
    )


def dasr_iso_code(scale: int = 4) -> DegradationConfig:
    """The official DASR code's isotropic setting (``option.py``/``main.sh``: ``sig_max=4.0`` at every scale)."""
    return dataclasses.replace(dasr_iso(scale), sigma_range=[0.2, 4.0])


def dasr_aniso(scale: int = 4) -> DegradationConfig:
    """DASR anisotropic: 21×21, λ1, λ2 ~ U(0.2, 4) as std devs (independent), θ ~ U(0, π), noise U(0, 25)."""
    return DegradationConfig(
        kernel="aniso",
        kernel_size=21,
        convention="sigma_std",
        lambda1_range=[0.2, 4.0],
        lambda2_range=[0.2, 4.0],
        lambda2_le_lambda1=False,
        theta_range=[0.0, math.pi],
        blur_border="reflect",
        downsampler="bicubic",
        noise_range=[0.0, 25.0],
    )


TRAIN_PRESETS: dict[str, Callable[[int], DegradationConfig]] = {
    "cmdsr_train": cmdsr_train,
    "cmdsr_code_train": cmdsr_code_train,
    "cdsr_train": cdsr_train,
    "dasr_iso": dasr_iso,
    "dasr_iso_code": dasr_iso_code,
    "dasr_aniso": dasr_aniso,
}

# ---- fixed test degradations ----------------------------------------------------------------------

CMDSR_TEST_SEED = 0


def cmdsr_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """CMDSR Table I: Simple / Middle / Severe (7×7 kernels, bicubic ×s, fixed noise seed).

    The official test generator blurs the whole image with a circular border; we do the same.
    """
    common = dict(scale=scale, kernel_size=7, blur_border="circular", downsampler="bicubic", seed=CMDSR_TEST_SEED)
    return {
        "simple": DegradationSpec(kernel="iso", sigma=0.2, noise=15.0, **common),
        "middle": DegradationSpec(kernel="iso", sigma=2.6, noise=15.0, **common),
        "severe": DegradationSpec(
            kernel="aniso", lambda1=4.0, lambda2=1.0, theta=-0.5, convention="eig_var", noise=50.0, **common
        ),
    }


def cdsr9_kernels(scale: int) -> list[tuple[float, float, float]]:
    """The 9 (sig1, sig2, θ) test kernels per scale of MANet's ``prepare_testset`` (variances)."""
    out = []
    for sig1 in (1.0, 1.0 + scale, 1.0 + 2 * scale):
        sig2 = 1.0
        while sig2 <= sig1 + 1e-9:
            for theta in (0.0, math.pi / 4):
                if sig1 == sig2 and theta != 0.0:
                    continue
                out.append((sig1, sig2, theta))
            sig2 += scale
    return out


def cdsr9_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """CDSR's 9 anisotropic test kernels, named like MANet's files: ``{sig1:.1f}_{sig2:.1f}_{θ:.1f}``."""
    return {
        f"{s1:.1f}_{s2:.1f}_{th:.1f}": DegradationSpec(
            scale=scale,
            kernel="aniso",
            kernel_size=21,
            lambda1=s1,
            lambda2=s2,
            theta=th,
            convention="eig_var",
            kernel_layout="shifted",
            blur_border="replicate",
            downsampler="sfold",
        )
        for s1, s2, th in cdsr9_kernels(scale)
    }


def cdsr9_noise15_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """CDSR Table 2's noisy setting, MANet's ``LR_mode0_noise15``: the 9 kernels, then AWGN σ = 15/255 on [0, 1]
    (15 on the 0–255 scale), clamped and rounded to uint8; the noise realisation is fixed (seed 0)."""
    return {name: dataclasses.replace(spec, noise=15.0, seed=0) for name, spec in cdsr9_test(scale).items()}


def bicubic_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """Clean MATLAB-bicubic ×s (no blur, no noise)."""
    return {"bicubic": DegradationSpec(scale=scale, kernel="none", downsampler="bicubic")}


TEST_PRESETS: dict[str, Callable[[int], dict[str, DegradationSpec]]] = {
    "cmdsr": cmdsr_test,
    "cdsr9": cdsr9_test,
    "cdsr9_noise15": cdsr9_noise15_test,
    "bicubic": bicubic_test,
}
