"""Named degradation settings of the papers.

Training distributions are ``DegradationConfig`` factories (what ``sample_spec`` draws from);
test sets are ordered ``{name: DegradationSpec}`` dicts of fixed degradations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

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


GAUSSIAN8_RANGES = {2: (0.80, 1.60), 3: (1.35, 2.40), 4: (1.80, 3.20)}  # IKC §4.1; DCLS/DAN code: linspace at ×4


def gaussian8_sigmas(scale: int) -> list[float]:
    """Gaussian8's 8 σ at ×s: ``np.linspace(lo, hi, 8)`` over IKC's range (DAN/DCLS ``generate_mod_blur_LR_bic``)."""
    if scale not in GAUSSIAN8_RANGES:
        raise ValueError(f"gaussian8 is defined at x{', x'.join(map(str, GAUSSIAN8_RANGES))}; got x{scale}")
    return [float(s) for s in np.linspace(*GAUSSIAN8_RANGES[scale], 8)]


def gaussian8_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """IKC/DAN/DCLS/KDSR Gaussian8: 21×21 isotropic σ (:func:`gaussian8_sigmas`), reflect border, MATLAB
    bicubic ×s, no noise; the published figure is the mean over the 8 columns. ``docs/protocols.md``."""
    return {
        f"sig{s:.2f}": DegradationSpec(scale=scale, kernel="iso", kernel_size=21, sigma=s, blur_border="reflect")
        for s in gaussian8_sigmas(scale)
    }


DASR_ISO_SIGMAS = {2: (0.0, 0.6, 1.2, 1.8), 3: (0.0, 0.8, 1.6, 2.4), 4: (0.0, 1.2, 2.4, 3.6)}  # DASR Table 2


def dasr_iso_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """DASR Table 2's isotropic grid (KDSR, CdCL, CDFormer at ×4): 21×21 σ, reflect border, bicubic ×s, no noise;
    σ 0 is bicubic alone (DASR's ``SRMDPreprocessing`` skips the blur)."""
    if scale not in DASR_ISO_SIGMAS:
        raise ValueError(f"dasr_iso is defined at x{', x'.join(map(str, DASR_ISO_SIGMAS))}; got x{scale}")
    return {
        f"sig{s:.1f}": DegradationSpec(
            scale=scale, kernel="iso" if s else "none", kernel_size=21, sigma=s, blur_border="reflect"
        )
        for s in DASR_ISO_SIGMAS[scale]
    }


# (λ1, λ2 std devs, θ degrees): CdCL test.sh "setting 2" (DASR's code base; KDSR test_anisonoise: 3.5, 1.5, 30)
DASR_ANISO_KERNELS = (
    (2.0, 0.5, 0.0),
    (2.0, 1.0, 10.0),
    (3.5, 1.5, 30.0),
    (3.5, 2.0, 45.0),
    (3.5, 2.0, 90.0),
    (4.0, 1.5, 120.0),
    (4.0, 2.0, 135.0),
    (4.0, 3.0, 165.0),
    (4.0, 4.0, 180.0),
)
DASR_ANISO_NOISE = (0.0, 5.0, 10.0, 20.0)  # KDSR Table 2: 0, 10, 20; CdCL: 5, 10; CDFormer: 0, 5, 10


def dasr_aniso_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """The 9 anisotropic kernels × noise levels of DASR's code base, named ``n{noise}_{λ1}_{λ2}_{θ°}``: 21×21,
    λ as std devs, θ given in degrees (DASR's ``--theta``), reflect border, bicubic ×s, then AWGN (0–255 scale,
    fixed seed 0), rounded and clamped."""
    return {
        f"n{n:g}_{l1:.1f}_{l2:.1f}_{deg:g}": DegradationSpec(
            scale=scale,
            kernel="aniso",
            kernel_size=21,
            lambda1=l1,
            lambda2=l2,
            theta=math.radians(deg),
            convention="sigma_std",
            noise=n,
            seed=0,
        )
        for n in DASR_ANISO_NOISE
        for l1, l2, deg in DASR_ANISO_KERNELS
    }


def bicubic_test(scale: int = 4) -> dict[str, DegradationSpec]:
    """Clean MATLAB-bicubic ×s (no blur, no noise)."""
    return {"bicubic": DegradationSpec(scale=scale, kernel="none", downsampler="bicubic")}


TEST_PRESETS: dict[str, Callable[[int], dict[str, DegradationSpec]]] = {
    "cmdsr": cmdsr_test,
    "cdsr9": cdsr9_test,
    "cdsr9_noise15": cdsr9_noise15_test,
    "gaussian8": gaussian8_test,
    "dasr_iso": dasr_iso_test,
    "dasr_aniso": dasr_aniso_test,
    "bicubic": bicubic_test,
}
