"""The separable path as banded axis matrices applied tile by tile, against independent references: blur then
MATLAB resize in float64 (scipy, the resize's own tests pin it to imresize.m), one composed 1-D kernel applied
with stride s (derived here from Keys' cubic), and the dense axis matrices the tiles slice; in both placements
(``pipeline.degrade`` on the sampler's channels-last crops, ``batched.degrade_many`` on the trainer's rows)."""

from __future__ import annotations

import dataclasses
import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from blindsr.degradations import DegradationSpec, degrade
from blindsr.degradations.banded import TILE_H, TILE_W, axis_operator, float_nchw, merge, separable, tiles
from blindsr.degradations.batched import Unit, degrade_many
from blindsr.degradations.blur import blur_np
from blindsr.degradations.noise import gaussian_noise
from blindsr.degradations.pipeline import axis, blur_and_downsample
from blindsr.degradations.resize import imresize_np

BORDERS = ["reflect", "replicate", "circular"]


def keys_cubic(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))


def composed_kernel(g: np.ndarray, s: int) -> tuple[np.ndarray, int]:
    """Gaussian g (k,) then antialiased bicubic ×1/s as one kernel, and the offset of its first tap from s·i.

    LR pixel i sits at HR coordinate u = s·i + (s − 1)/2 and reads HR pixels j with |u − j| < 2s, weighted by
    cubic((u − j)/s), normalised; the blur widens that by k//2 on each side."""
    u = (s - 1) / 2
    j = np.arange(int(np.floor(u - 2 * s)) + 1, int(np.ceil(u + 2 * s)))
    w = keys_cubic((u - j) / s)
    return np.convolve(w / w.sum(), g), int(j[0]) - len(g) // 2


def reference(x: np.ndarray, spec: DegradationSpec, margin: int) -> np.ndarray:
    """(H, W, C) float64 → blurred (scipy), MATLAB-resized (float64), margin cropped: (h, w, C)."""
    s, m = spec.scale, margin // spec.scale
    y = blur_np(x, spec.kernel_array(), spec.blur_border)
    y = imresize_np(y, 1 / s) if spec.downsampler == "bicubic" else y[::s, ::s]
    return y[m : y.shape[0] - m, m : y.shape[1] - m]


def _spec(rng: np.random.Generator, scale: int, **kw) -> DegradationSpec:
    """An isotropic spec with an arbitrary σ (not the training grid's) and a random kernel size."""
    size = int(rng.choice([7, 15, 21]))
    return DegradationSpec(scale=scale, sigma=float(rng.uniform(0.2, 2.0 * scale)), kernel_size=size, **kw)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_one_composed_kernel_with_stride_s_is_blur_then_resize_inside_the_margin(scale, rng):
    """With the context margin every kept LR pixel is the composed kernel (k − 1 + 4s taps, or 4s − 1 + k − 1 at
    odd s) applied with stride s, and the banded path equals blur-then-resize on a non-square image."""
    spec = _spec(rng, scale, noise=0.0)
    m = spec.context()
    x = rng.random((scale * 13 + 2 * m, scale * 17 + 2 * m, 3)) * 255
    c, offset = composed_kernel(spec.kernel_1d(), scale)
    assert len(c) == spec.kernel_size - 1 + (4 * scale if scale % 2 == 0 else 4 * scale - 1)
    ref = reference(x, spec, m)
    h, w = ref.shape[:2]
    rows = np.arange(h)[:, None] * scale + m + offset + np.arange(len(c))  # (h, taps) HR rows of each LR row
    cols = np.arange(w)[:, None] * scale + m + offset + np.arange(len(c))
    assert rows.min() >= 0 and rows.max() < x.shape[0] and cols.max() < x.shape[1]  # no border reached
    strided = np.einsum("t,v,itjvc->ijc", c, c, x[rows][:, :, cols])  # (h, taps, w, taps, C) windows
    np.testing.assert_allclose(strided, ref, atol=1e-9, rtol=0)
    ours = blur_and_downsample(torch.from_numpy(x).permute(2, 0, 1)[None], spec, m)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("downsampler", ["bicubic", "sfold"])
def test_whole_image_with_its_borders_equals_blur_then_resize(border, scale, downsampler, rng):
    """No margin: the tiles at either end hold the border rows (mirrored blur, MATLAB's symmetric resize)."""
    spec = _spec(rng, scale, blur_border=border, downsampler=downsampler)
    x = rng.random((scale * 41, scale * 29, 3)) * 255  # several tiles along each axis
    ours = blur_and_downsample(torch.from_numpy(x).permute(2, 0, 1)[None], spec)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, reference(x, spec, 0), atol=1e-9, rtol=0)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_only_rows_whose_reach_leaves_the_axis_differ_from_the_composed_kernel(scale):
    """Row i reads HR rows [s·i + offset, s·i + offset + taps); the rows where that leaves [0, n) are the border rows
    (4 at each end for k = 15 at ×4), each row inside is the composed kernel alone, and the context margin keeps
    only rows inside."""
    spec = DegradationSpec(scale=scale, sigma=1.7, kernel_size=15)
    c, offset = composed_kernel(spec.kernel_1d(), scale)
    n, out = scale * 40, 40
    op = axis_operator(n, tuple(spec.kernel_1d()), "reflect", "bicubic", scale, (0, out))
    border = []
    for i in range(out):
        start = scale * i + offset
        placed = np.zeros(n + 2 * len(c))  # c at its place, taps past either end dropped
        placed[len(c) + start : 2 * len(c) + start] = c
        placed = placed[len(c) : len(c) + n]
        inside = start >= 0 and start + len(c) <= n
        assert np.allclose(op[i], placed, rtol=0, atol=1e-15) == inside, i
        border += [] if inside else [i]
    if scale == 4:
        assert border == [0, 1, 2, 3, 36, 37, 38, 39]
    m = spec.context() // scale
    assert not set(border) & set(range(m, out - m))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_both_placements_equal_blur_then_resize_then_noise(scale, rng):
    """uint8 LR of the actor path (``degrade`` on the sampler's channels-last crops) and of the trainer path
    (``degrade_many`` on contiguous windows, units of different σ and kernel size stacked) against the float64
    reference plus the same noise, rounded: equal but for float ties at .5."""
    units, refs = [], []
    for i in range(4):
        spec = _spec(rng, scale, noise=float(rng.uniform(0, 30)), seed=i)
        m = spec.context()
        hwc = rng.integers(0, 256, (3, scale * 11 + 2 * m, scale * 14 + 2 * m, 3), dtype=np.uint8)
        ref = np.stack([reference(im.astype(float), spec, m) for im in hwc]).transpose(0, 3, 1, 2)
        ref = np.clip(np.rint(ref + gaussian_noise(ref.shape, spec.noise, spec.seed).numpy()), 0, 255)
        actor = degrade(torch.from_numpy(hwc).permute(0, 3, 1, 2), spec, m).numpy()
        diff = np.abs(actor.astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        units.append(Unit(torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))), spec, m))
        refs.append(actor)
    shapes = {u.hr.shape for u in units}
    for unit, got, want in zip(units, degrade_many(units), refs, strict=True):
        assert torch.equal(got, torch.from_numpy(want)), (unit.spec, len(shapes))


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="bit equality needs a BLAS that sums along k (MKL)")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiles_give_the_dense_products_bits(scale, rng):
    """float32, with and without margin, one unit and several: the products of the dense axis matrices (the path
    before the tiles) bit for bit, so every row the platform made before stays as it was."""
    for margin in (0, 4 * scale):
        specs = [_spec(rng, scale) for _ in range(3)]
        hh, ww = scale * 47 + 2 * margin, scale * 33 + 2 * margin
        x = torch.from_numpy(rng.random((3, 2, 3, hh, ww), dtype=np.float32) * 255)  # 3 units of 2 crops
        ops = [  # per axis, per unit: (matrix, tiling)
            [axis(sp, n, margin // scale, n // scale - 2 * margin // scale, t, torch.float32, x.device) for sp in specs]
            for n, t in ((hh, TILE_H), (ww, TILE_W))
        ]
        dense = torch.stack([oh @ (x[i] @ ow.T) for i, ((oh, _), (ow, _)) in enumerate(zip(*ops, strict=True))])
        (op_h, t_h), (op_w, t_w) = ((torch.stack([o for o, _ in a]), merge([t for _, t in a])) for a in ops)
        assert torch.equal(separable(list(x), op_h, op_w, t_h, t_w), dense)
        one = [[a[1]] for a in ops]  # the second unit alone, with its own narrower bands
        (oh1, th1), (ow1, tw1) = ((a[0][0][None], a[0][1]) for a in one)
        assert torch.equal(separable([x[1]], oh1, ow1, th1, tw1)[0], dense[1])


def test_tiles_are_balanced_and_hold_every_weight():
    """No tile of one row (a matrix-vector product sums in another order), every nonzero weight inside a band."""
    for (out, n), tile in itertools.product(((47, 4 * 47), (17, 68), (2, 8), (160, 640)), (TILE_W, TILE_H)):
        tiling = tiles(n, 15, "circular", "bicubic", 4, (0, out), tile)
        sizes = [r1 - r0 for r0, r1, _, _ in tiling]
        assert sum(sizes) == out and max(sizes) <= tile and min(sizes) >= min(2, out)
        assert max(sizes) - min(sizes) <= 1
        op = axis_operator(n, tuple(np.random.default_rng(out).random(15)), "circular", "bicubic", 4, (0, out))
        for r0, r1, lo, hi in tiling:
            assert not op[r0:r1, :lo].any() and not op[r0:r1, hi:].any()


def test_float_nchw_converts_every_layout_exactly(rng):
    hwc = rng.integers(0, 256, (2, 12, 10, 3), dtype=np.uint8)
    want = torch.from_numpy(hwc.astype(np.float32)).permute(0, 3, 1, 2)
    channels_last = torch.from_numpy(hwc).permute(0, 3, 1, 2)  # the sampler's stack of crops
    for x, ref in (
        (channels_last, want),
        (channels_last.contiguous(), want),
        (channels_last[..., 2:8, 1:9], want[..., 2:8, 1:9]),
        (channels_last.double(), want.double()),
    ):
        got = float_nchw(x)
        assert got.is_contiguous() and got.dtype == ref.dtype and torch.equal(got, ref)
    out = torch.empty(2, 3, 12, 10)
    assert float_nchw(channels_last, out=out) is out and torch.equal(out, want)


def test_a_group_of_mixed_kernel_sizes_and_no_blur_stays_exact(rng):
    """Units of one shape but different kernel sizes (and none) share one tiling, the union of their bands; a float64
    unit first still runs in the group's float32."""
    hr = torch.from_numpy(rng.integers(0, 256, (2, 3, 4 * 20 + 40, 4 * 18 + 40), dtype=np.uint8))
    specs = [
        DegradationSpec(scale=4, sigma=0.7, kernel_size=7, noise=5.0, seed=1),
        DegradationSpec(scale=4, sigma=3.1, kernel_size=21, noise=5.0, seed=2),
        DegradationSpec(scale=4, kernel="none", noise=5.0, seed=3),
        dataclasses.replace(DegradationSpec(scale=4, sigma=1.2, kernel_size=15), downsampler="sfold"),
    ]
    units = [Unit(hr.double() if i == 0 else hr, sp, 20) for i, sp in enumerate(specs)]  # float32 all the same
    for unit, got in zip(units, degrade_many(units), strict=True):
        assert torch.equal(got, degrade(hr, unit.spec, unit.margin))


def test_no_weight_is_a_float32_denormal():
    """σ 0.3, on CMDSR's training grid, has far Gaussian taps below float32's smallest normal number; kept as float32
    denormals they slowed every product with them ~17× (a whole task from 11 to 190 ms); flushed, they change no
    output."""
    tiny = np.finfo(np.float32).tiny
    spec = DegradationSpec(scale=4, sigma=0.3, kernel_size=15)
    g = spec.kernel_1d()
    assert ((g > 0) & (g < tiny)).any()
    for n, margin in ((224, 4), (160, 0)):
        op, _ = axis(spec, n, margin, n // 4 - 2 * margin, TILE_W, torch.float32, torch.device("cpu"))
        assert not ((op != 0) & (op.abs() < tiny)).any()
    x = np.random.default_rng(0).random((96, 80, 3)) * 255
    ours = blur_and_downsample(torch.from_numpy(x).permute(2, 0, 1)[None], spec)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, reference(x, spec, 0), atol=1e-9, rtol=0)


def test_threads_degrading_at_once_get_their_own_pixels(rng):
    """The CPU path reuses its intermediate buffers call after call; each thread has its own."""
    jobs = []
    for i in range(4):
        spec = DegradationSpec(scale=4, sigma=0.5 + i, kernel_size=15, noise=4.0, seed=i)
        hwc = rng.integers(0, 256, (6, 4 * 12 + 32, 4 * 12 + 32, 3), dtype=np.uint8)
        crops = torch.from_numpy(hwc).permute(0, 3, 1, 2)
        jobs.append((crops, spec, degrade(crops, spec, 16)))

    def run(job: tuple) -> bool:
        crops, spec, want = job
        return all(torch.equal(degrade(crops, spec, 16), want) for _ in range(30))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, jobs))
