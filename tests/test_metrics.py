"""PSNR/SSIM on Y against closed forms and scikit-image's independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from blindsr.degradations import DegradationSpec, apply
from blindsr.metrics import psnr, rgb_to_y, ssim, to_uint8


@pytest.fixture(scope="module")
def pair(photo):
    hr = photo[:120, :160]
    sr = apply(hr, DegradationSpec(scale=1, kernel="iso", sigma=1.2, kernel_size=7, noise=8.0, seed=3))
    return sr, hr


def test_y_is_bt601():
    assert rgb_to_y(np.array([[[0, 0, 0]]]))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.array([[[255, 255, 255]]]))[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(np.array([[[255, 0, 0]]]))[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_closed_form_for_a_constant_offset():
    hr = np.full((20, 24, 3), 100, np.uint8)
    sr = hr + np.uint8(10)
    d_y = 10 * (65.481 + 128.553 + 24.966) / 255
    assert psnr(sr, hr) == pytest.approx(20 * math.log10(255 / d_y), abs=1e-9)
    assert psnr(sr, hr, y_only=False) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert psnr(hr, hr) == math.inf and ssim(hr, hr) == pytest.approx(1.0)


@pytest.mark.parametrize("shave", [0, 2, 4])
def test_against_scikit_image(pair, shave):
    sr, hr = pair
    sl = (slice(shave, -shave or None),) * 2
    ys, yh = rgb_to_y(sr)[sl], rgb_to_y(hr)[sl]
    assert psnr(sr, hr, shave) == pytest.approx(peak_signal_noise_ratio(yh, ys, data_range=255), abs=1e-6)
    ref = structural_similarity(yh, ys, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim(sr, hr, shave) == pytest.approx(ref, abs=1e-6)
    ref_rgb = structural_similarity(
        hr[sl].astype(float),
        sr[sl].astype(float),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    assert ssim(sr, hr, shave, y_only=False) == pytest.approx(ref_rgb, abs=1e-6)
    ref_psnr_rgb = peak_signal_noise_ratio(hr[sl], sr[sl], data_range=255)
    assert psnr(sr, hr, shave, y_only=False) == pytest.approx(ref_psnr_rgb, abs=1e-6)


def test_to_uint8_rounds_and_clips():
    t = torch.tensor([[[-0.1, 0.4 / 255, 1.6 / 255, 1.2]]]).expand(3, 1, 4)
    out = to_uint8(t)
    assert out.shape == (1, 4, 3) and out[0, :, 0].tolist() == [0, 0, 2, 255]


def test_bad_inputs_are_reported(pair):
    sr, hr = pair
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(sr[:-1], hr)
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(sr[:8, :8], hr[:8, :8], shave=4)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(sr[:14, :14], hr[:14, :14], shave=2)
