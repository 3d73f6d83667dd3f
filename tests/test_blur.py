"""Batched torch blur vs a brute-force numpy correlation with explicit padding, for each border; the strided
s-fold blur vs blur-then-subsample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blindsr.degradations.blur import blur, blur_np, blur_subsample
from blindsr.degradations.kernels import gaussian_aniso, gaussian_aniso_shifted
from blindsr.degradations.resize import subsample

NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def brute_force(img: np.ndarray, k: np.ndarray, border: str) -> np.ndarray:
    """out[i, j] = Σ_{u,v} k[u, v] · pad(img)[i + u, j + v], padding k//2 before and k−1−k//2 after."""
    n = k.shape[0]
    before, after = n // 2, n - 1 - n // 2
    p = np.pad(img, ((before, after), (before, after)), mode=NP_PAD[border])
    out = np.zeros(img.shape)
    for u in range(n):
        for v in range(n):
            out += k[u, v] * p[u : u + img.shape[0], v : v + img.shape[1]]
    return out


@pytest.mark.parametrize("border", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel", ["aniso7", "shifted21", "even4"])
def test_blur_matches_brute_force(border, kernel, rng):
    k = {
        "aniso7": gaussian_aniso(7, 4.0, 1.0, -0.5),
        "shifted21": gaussian_aniso_shifted(21, 4, 9.0, 1.0, 0.7),
        "even4": rng.random((4, 4)),
    }[kernel]
    img = rng.random((2, 3, 23, 31)) * 255  # non-square batch
    out = blur(torch.from_numpy(img), torch.from_numpy(k), border).numpy()
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[b, c], brute_force(img[b, c], k, border), atol=1e-9)
    np.testing.assert_allclose(blur_np(img[1].transpose(1, 2, 0), k, border), out[1].transpose(1, 2, 0), atol=1e-9)


def test_per_sample_kernels_equal_one_call_each(rng):
    x = torch.from_numpy(rng.random((3, 3, 20, 17)))
    ks = torch.from_numpy(np.stack([gaussian_aniso(9, 1 + i, 1.0, 0.3 * i) for i in range(3)]))
    out = blur(x, ks, "replicate")
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], blur(x[i : i + 1], ks[i], "replicate"))
    with pytest.raises(ValueError, match="do not match batch size"):
        blur(x, ks[:2])


def test_unknown_border_is_rejected(rng):
    with pytest.raises(ValueError, match="unknown blur border 'zero'"):
        blur(torch.zeros(1, 1, 8, 8), torch.ones(3, 3) / 9, "zero")


@pytest.mark.parametrize("border", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize(("scale", "margin"), [(2, 0), (3, 1), (4, 0), (4, 3), (4, 6)])  # 6 = CDSR's ×4 context
def test_strided_blur_equals_blur_then_subsample(border, scale, margin, rng):
    k = torch.from_numpy(gaussian_aniso_shifted(21, scale, 9.0, 1.5, 0.7))  # CDSR's non-separable kernel
    x = torch.from_numpy(rng.random((2, 3, 24 * scale, 20 * scale)) * 255)  # float64: compare exactly
    reference = subsample(blur(x, k, border), scale)[..., margin : 24 - margin, margin : 20 - margin]
    out = blur_subsample(x, k, scale, border, margin)
    assert out.shape == reference.shape == (2, 3, 24 - 2 * margin, 20 - 2 * margin)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-9)
