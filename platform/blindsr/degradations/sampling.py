"""``sample_spec(rng, cfg, scale)``: draw one degradation from a ``DegradationConfig`` distribution."""

from __future__ import annotations

import numpy as np

from blindsr.degradations.config import DegradationConfig
from blindsr.degradations.spec import DegradationSpec, context_margin


def sigma_grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Discrete widths lo, lo+step, …, hi (inclusive), rounded to 1e-9 to kill float drift."""
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    return np.round(lo + step * np.arange(n), 9)


def _uniform(rng: np.random.Generator, lo_hi: list[float]) -> float:
    lo, hi = lo_hi
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def sample_spec(rng: np.random.Generator, cfg: DegradationConfig, scale: int) -> DegradationSpec:
    """One random degradation, every parameter explicit; ``seed`` fixes its noise realisation."""
    kind = cfg.kernel
    if kind == "mixed":
        kind = "iso" if rng.random() < cfg.iso_prob else "aniso"
    params: dict[str, float] = {}
    if kind == "iso":
        lo, hi = cfg.sigma_range
        if cfg.sigma_step > 0:
            params["sigma"] = float(rng.choice(sigma_grid(lo, hi, cfg.sigma_step)))
        else:
            params["sigma"] = _uniform(rng, cfg.sigma_range)
    elif kind == "aniso":
        l1 = _uniform(rng, cfg.lambda1_range)
        if cfg.lambda2_le_lambda1:
            l2 = _uniform(rng, [cfg.lambda2_range[0], min(l1, cfg.lambda2_range[1])])
        else:
            l2 = _uniform(rng, cfg.lambda2_range)
        params.update(lambda1=l1, lambda2=l2, theta=_uniform(rng, cfg.theta_range))
    if cfg.noise_range[1] <= 0:
        noise = 0.0
    elif cfg.noise_step > 0:
        noise = float(rng.choice(sigma_grid(*cfg.noise_range, cfg.noise_step)))
    else:
        noise = _uniform(rng, cfg.noise_range)
    if cfg.clean_fraction > 0 and rng.random() < cfg.clean_fraction:  # drawn only when asked: streams stay as before
        noise = 0.0
    quality = 0
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1))
    return DegradationSpec(
        scale=scale,
        kernel=kind,
        kernel_size=cfg.kernel_size,
        convention=cfg.convention,
        kernel_layout=cfg.kernel_layout,
        blur_border=cfg.blur_border,
        downsampler=cfg.downsampler,
        rounding=cfg.rounding,
        noise=noise,
        jpeg_quality=quality,
        seed=int(rng.integers(0, 2**31 - 1)),
        **params,
    )


def max_context(cfg: DegradationConfig, scale: int) -> int:
    """The largest ``spec.context()`` of any spec :func:`sample_spec` draws from ``cfg`` at ×``scale`` (HR px)."""
    return context_margin(scale, cfg.kernel_size, cfg.downsampler)
