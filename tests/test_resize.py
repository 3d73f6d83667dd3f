"""MATLAB bicubic ``imresize``: a per-pixel loop written from MATLAB's imresize.m, Pillow's independent
resampler on the interior, closed-form kernel values and polynomial reproduction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from blindsr.degradations.resize import cubic, imresize, imresize_np, output_size, resize_matrix, subsample


def matlab_reference_1d(signal: np.ndarray, scale: float) -> np.ndarray:
    """imresize.m 'contributions' for one axis, one output sample at a time, 1-based like MATLAB."""
    n = len(signal)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    aux = list(range(1, n + 1)) + list(range(n, 0, -1))  # symmetric padding
    out = []
    for x in range(1, math.ceil(n * scale) + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kernel_width / 2)
        idx = [left + p for p in range(math.ceil(kernel_width) + 2)]

        def h(t: float) -> float:
            t = abs(t)
            if t <= 1:
                return 1.5 * t**3 - 2.5 * t**2 + 1
            if t <= 2:
                return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
            return 0.0

        w = [scale * h(scale * (u - j)) if scale < 1 else h(u - j) for j in idx]
        total = sum(w)
        out.append(sum(wi / total * signal[aux[(j - 1) % len(aux)] - 1] for wi, j in zip(w, idx, strict=True)))
    return np.array(out)


def reference_2d(img: np.ndarray, scale: float) -> np.ndarray:
    rows = np.stack([matlab_reference_1d(col, scale) for col in img.T], axis=1)
    return np.stack([matlab_reference_1d(row, scale) for row in rows], axis=0)


def test_cubic_kernel_known_values():
    np.testing.assert_allclose(cubic(np.array([0, 0.5, 1, 1.5, 2, 2.5, -0.5])), [1, 0.5625, 0, -0.0625, 0, 0, 0.5625])


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 0.37, 2.0, 3.0, 1.5])
def test_matches_matlab_formula_everywhere(scale, rng):
    img = rng.random((19, 26))  # non-square, in [0, 1] like BasicSR's contract
    out = imresize_np(img, scale)
    assert out.shape == (output_size(19, scale), output_size(26, scale))
    np.testing.assert_allclose(out, reference_2d(img, scale), atol=1e-12)


@pytest.mark.parametrize(("scale", "shape"), [(1 / 4, (40, 56)), (1 / 2, (30, 44)), (2.0, (12, 17)), (4.0, (16, 13))])
def test_interior_matches_pillow_resampler(scale, shape, rng):
    """Pillow's bicubic (a = −0.5, antialiased) is an independent code base that clips instead of mirroring,
    so it must agree with ours away from the border."""
    img = rng.random(shape).astype(np.float32)
    out = imresize_np(img, scale)
    pil = np.asarray(Image.fromarray(img, mode="F").resize((out.shape[1], out.shape[0]), Image.BICUBIC))
    b = 3 * int(max(1, scale))  # outputs whose taps reach past the edge
    np.testing.assert_allclose(out[b:-b, b:-b], pil[b:-b, b:-b], atol=1e-5)


def test_reproduces_constants_and_ramps_in_interior():
    const = np.full((24, 32), 0.7)
    np.testing.assert_allclose(imresize_np(const, 0.25), 0.7, atol=1e-12)
    ramp = np.tile(np.arange(64, dtype=float), (8, 1))  # value = column index
    out = imresize_np(ramp, 0.25)
    centres = (np.arange(16) + 0.5) * 4 - 0.5  # 0-based position each output samples
    np.testing.assert_allclose(out[:, 2:-2], np.tile(centres[2:-2], (2, 1)), atol=1e-9)


def test_torch_batched_equals_numpy_and_runs_on_any_leading_shape(rng):
    img = rng.random((2, 3, 40, 28))
    out = imresize(torch.from_numpy(img), 1 / 4).numpy()
    assert out.shape == (2, 3, 10, 7)
    for b in range(2):
        np.testing.assert_allclose(out[b].transpose(1, 2, 0), imresize_np(img[b].transpose(1, 2, 0), 1 / 4), atol=1e-12)
    with pytest.raises(TypeError, match="floating-point"):
        imresize(torch.zeros(1, 4, 4, dtype=torch.uint8), 0.5)


def test_weights_sum_to_one_and_no_antialias_mode():
    for n, s in [(48, 0.25), (10, 3.0), (7, 0.5)]:
        np.testing.assert_allclose(resize_matrix(n, s).sum(1), 1.0)
    narrow = resize_matrix(32, 0.25, antialias=False)
    assert (np.count_nonzero(narrow, axis=1)[2:-2] <= 4).all()


def test_subsample_takes_every_sth_pixel():
    x = torch.arange(2 * 8 * 12).reshape(1, 2, 8, 12)
    assert torch.equal(subsample(x, 4), x[..., 0::4, 0::4])
