"""Kernels against MATLAB values, closed-form moments and an independent scipy.stats reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from blindsr.degradations import kernels as K


def test_fspecial_matches_matlab_documented_values():
    # MATLAB: fspecial('gaussian', 3, 0.5) = [0.0113 0.0838 0.0113; 0.0838 0.6193 0.0838; ...]
    expected = np.array([[0.0113, 0.0838, 0.0113], [0.0838, 0.6193, 0.0838], [0.0113, 0.0838, 0.0113]])
    np.testing.assert_allclose(K.gaussian_iso(3, 0.5), expected, atol=5e-5)


@pytest.mark.parametrize(("size", "sigma"), [(7, 0.2), (7, 2.6), (15, 4.0), (21, 1.3)])
def test_iso_is_normalised_symmetric_and_separable(size, sigma):
    k = K.gaussian_iso(size, sigma)
    assert k.shape == (size, size) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    g = K.gaussian_iso_1d(size, sigma)
    np.testing.assert_allclose(np.outer(g, g), k, atol=1e-15)


def _moments(k: np.ndarray) -> np.ndarray:
    """Covariance matrix [[var_x, cov], [cov, var_y]] of a kernel (x along columns)."""
    c = (k.shape[0] - 1) / 2
    y, x = np.mgrid[: k.shape[0], : k.shape[1]] - c
    mx, my = (k * x).sum(), (k * y).sum()
    vx, vy = (k * (x - mx) ** 2).sum(), (k * (y - my) ** 2).sum()
    cxy = (k * (x - mx) * (y - my)).sum()
    return np.array([[vx, cxy], [cxy, vy]])


@pytest.mark.parametrize("theta", [0.0, 0.5, math.pi / 4, -0.5, 2.0])
def test_aniso_eig_var_has_requested_covariance(theta):
    k = K.gaussian_aniso(61, 4.0, 1.0, theta, "eig_var")  # large grid: no truncation
    cov = _moments(k)
    np.testing.assert_allclose(np.linalg.eigvalsh(cov), [1.0, 4.0], atol=1e-6)
    major = np.linalg.eigh(cov)[1][:, 1]
    assert abs(abs(major @ [math.cos(theta), math.sin(theta)]) - 1) < 1e-6


def test_conventions_relate_by_squaring():
    a = K.gaussian_aniso(21, 4.0, 1.0, 0.3, "eig_var")
    b = K.gaussian_aniso(21, 2.0, 1.0, 0.3, "sigma_std")
    np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="unknown kernel convention"):
        K.gaussian_aniso(21, 1, 1, 0, "variance")


def test_aniso_with_equal_eigenvalues_is_isotropic():
    np.testing.assert_allclose(K.gaussian_aniso(15, 2.25, 2.25, 1.1, "eig_var"), K.gaussian_iso(15, 1.5), atol=1e-15)


def test_theta_rotates_axes():
    k0 = K.gaussian_aniso(21, 5.0, 1.0, 0.0)
    k90 = K.gaussian_aniso(21, 5.0, 1.0, math.pi / 2)
    np.testing.assert_allclose(k0.T, k90, atol=1e-15)
    assert _moments(k0)[0, 0] > _moments(k0)[1, 1]  # θ = 0: long axis along x (columns)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("l1", "l2", "theta"), [(1.0, 1.0, 0.0), (9.0, 1.0, math.pi / 4), (5.0, 3.0, 0.0)])
def test_cdsr_shifted_kernel_against_scipy_reference(scale, l1, l2, theta):
    """MANet: evaluate an N(0, Σ) pdf on a (21−s+1)² grid centred at (l−1)/2, normalise, put top-left."""
    k = K.gaussian_aniso_shifted(21, scale, l1, l2, theta, "eig_var")
    n = 21 - scale + 1
    c, s = math.cos(theta), math.sin(theta)
    cov = np.array([[l1 * c * c + l2 * s * s, (l1 - l2) * c * s], [(l1 - l2) * c * s, l1 * s * s + l2 * c * c]])
    coords = np.arange(n) - (n - 1) / 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    ref = multivariate_normal(mean=[0, 0], cov=cov).pdf(np.dstack([xx, yy]))
    ref[ref < np.finfo(float).eps * ref.max()] = 0
    ref /= ref.sum()
    assert k.shape == (21, 21)
    np.testing.assert_allclose(k[:n, :n], ref, rtol=1e-10, atol=1e-15)
    assert not k[n:].any() and not k[:, n:].any()
    # centre of mass sits at (21 − s)/2, i.e. shifted up-left of the array centre 10 by (s − 1)/2
    idx = np.arange(21)
    assert (k.sum(0) * idx).sum() == pytest.approx((21 - scale) / 2, abs=1e-9)


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        K.gaussian_iso(7, 0.0)
    with pytest.raises(ValueError, match="eigenvalues must be > 0"):
        K.gaussian_aniso(7, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="too small for scale"):
        K.gaussian_aniso_shifted(3, 4, 1.0, 1.0, 0.0)
