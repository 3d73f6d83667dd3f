"""Gaussian blur kernels, as numpy float64 arrays that sum to 1.

x runs along columns, y along rows; θ (radians) rotates the first principal axis counter-clockwise from x: Σ =
R(θ)·diag(v1, v2)·R(θ)ᵀ. ``eig_var`` (CMDSR, CDSR/MANet, KAIR): λ are variances; ``sigma_std`` (DASR, BasicSR): λ
are standard deviations. Values below eps·max are zeroed before normalisation, as MATLAB's ``fspecial('gaussian')``
and MANet do."""

from __future__ import annotations

from typing import Literal

import numpy as np

Convention = Literal["eig_var", "sigma_std"]
_EPS = np.finfo(np.float64).eps


def _normalise(k: np.ndarray) -> np.ndarray:
    k = np.where(k < _EPS * k.max(), 0.0, k)
    return k / k.sum()


def _grid(size: int) -> np.ndarray:
    """Centred coordinates of ``size`` samples: [-(size-1)/2, …, (size-1)/2] (half-integers if even)."""
    c = (size - 1) / 2.0
    return np.arange(size, dtype=np.float64) - c


def gaussian_iso_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of :func:`gaussian_iso` (outer(g, g) equals the 2-D kernel up to thresholding). (size,)"""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = _grid(size)
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def gaussian_iso(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: isotropic Gaussian, std ``sigma``. (size, size)"""
    if size < 1:
        raise ValueError(f"kernel size must be ≥ 1, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = _grid(size)
    xx, yy = np.meshgrid(x, x)
    return _normalise(np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2)))


def covariance(lambda1: float, lambda2: float, theta: float, convention: Convention) -> np.ndarray:
    """2×2 covariance of an anisotropic Gaussian from (λ1, λ2, θ) in the named convention."""
    if convention == "eig_var":
        v1, v2 = float(lambda1), float(lambda2)
    elif convention == "sigma_std":
        v1, v2 = float(lambda1) ** 2, float(lambda2) ** 2
    else:
        raise ValueError(f"unknown kernel convention {convention!r}; use 'eig_var' or 'sigma_std'")
    if v1 <= 0 or v2 <= 0:
        raise ValueError(f"kernel eigenvalues must be > 0, got λ1={lambda1}, λ2={lambda2}")
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([v1, v2]) @ rot.T


def gaussian_aniso(
    size: int, lambda1: float, lambda2: float, theta: float, convention: Convention = "eig_var"
) -> np.ndarray:
    """Anisotropic Gaussian on a centred ``size``×``size`` grid. (size, size)"""
    cov = covariance(lambda1, lambda2, theta, convention)
    inv = np.linalg.inv(cov)
    x = _grid(size)
    xx, yy = np.meshgrid(x, x)  # xx varies along columns
    q = inv[0, 0] * xx**2 + 2.0 * inv[0, 1] * xx * yy + inv[1, 1] * yy**2
    return _normalise(np.exp(-0.5 * q))


def _top_left(small: np.ndarray, size: int) -> np.ndarray:
    """Place a small kernel top-left in a size² zero array (MANet's s-fold alignment). (size, size)"""
    out = np.zeros((size, size), dtype=np.float64)
    n = small.shape[0]
    out[:n, :n] = small
    return out


def gaussian_aniso_shifted(
    size: int, scale: int, lambda1: float, lambda2: float, theta: float, convention: Convention = "eig_var"
) -> np.ndarray:
    """CDSR/MANet training and test kernel: evaluated on a (size−s+1)² grid, normalised, placed top-left
    in a size² array, so that blur (correlation, replicate border) + ``x[::s, ::s]`` subsampling is
    aligned the way MANet's and CDSR's code align it. (size, size)"""
    inner = size - scale + 1
    if inner < 1:
        raise ValueError(f"kernel size {size} too small for scale {scale}")
    return _top_left(gaussian_aniso(inner, lambda1, lambda2, theta, convention), size)


def gaussian_iso_shifted(size: int, scale: int, sigma: float) -> np.ndarray:
    """Isotropic counterpart of :func:`gaussian_aniso_shifted`. (size, size)"""
    inner = size - scale + 1
    if inner < 1:
        raise ValueError(f"kernel size {size} too small for scale {scale}")
    return _top_left(gaussian_iso(inner, sigma), size)
