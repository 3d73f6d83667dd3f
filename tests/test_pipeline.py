"""The degradation pipeline against step-by-step formulas, crop/full-image equality, seeds, presets."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from blindsr.config import DegradationConfig
from blindsr.degradations import TEST_PRESETS, TRAIN_PRESETS, DegradationSpec, apply, degrade, mod_crop, sample_spec
from blindsr.degradations.blur import blur, blur_np
from blindsr.degradations.jpeg import jpeg_np
from blindsr.degradations.noise import gaussian_noise
from blindsr.degradations.pipeline import blur_and_downsample
from blindsr.degradations.resize import imresize, imresize_np
from blindsr.degradations.sampling import sigma_grid


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


def _specs(scale: int = 4, seed: int = 7) -> list[DegradationSpec]:
    rng = np.random.default_rng(seed)
    return [sample_spec(rng, fn(scale), scale) for fn in TRAIN_PRESETS.values()]


@pytest.mark.parametrize("spec", _specs(), ids=list(TRAIN_PRESETS))
def test_equals_formula_step_by_step(spec, photo):
    """LR = round(clip(down(blur(HR, k)) + n)), each step computed independently with numpy/scipy."""
    hr = mod_crop(photo, spec.scale)
    lr = apply(hr, spec)
    if spec.downsampler == "cv2_cubic":  # the official CMDSR data_loader.py, uint8 all the way
        k, size = spec.kernel_size, (hr.shape[1] // spec.scale, hr.shape[0] // spec.scale)
        x = cv2.resize(cv2.GaussianBlur(hr, (k, k), spec.sigma), size, interpolation=cv2.INTER_CUBIC).astype(float)
    else:
        x = blur_np(hr, spec.kernel_array(), spec.blur_border)
        x = imresize_np(x, 1 / spec.scale) if spec.downsampler == "bicubic" else x[:: spec.scale, :: spec.scale]
    noise = gaussian_noise((1, 3, *x.shape[:2]), spec.noise, spec.seed)[0].numpy().transpose(1, 2, 0)
    x = x + noise
    ref = np.clip(np.floor(x) if spec.rounding == "floor" else np.rint(x), 0, 255).astype(np.uint8)
    diff = np.abs(lr.astype(int) - ref.astype(int))
    assert lr.shape == (hr.shape[0] // spec.scale, hr.shape[1] // spec.scale, 3)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # only float ties at .5 may flip


@pytest.mark.parametrize("spec", _specs(scale=2, seed=3) + _specs(scale=4, seed=4))
def test_crop_with_margin_equals_full_image(spec, photo):
    """A task's LR patch is exactly the matching region of the whole image's LR (no border artefacts)."""
    s, m = spec.scale, spec.context()
    spec = dataclasses.replace(spec, noise=0.0)
    hr = mod_crop(photo, s)
    full = apply(hr, spec)
    top, left, size = 12 * s, 20 * s, 24 * s
    window = hr[top - m : top + size + m, left - m : left + size + m]
    crop = degrade(_t(window), spec, margin=m)[0].permute(1, 2, 0).numpy()
    ref = full[top // s : (top + size) // s, left // s : (left + size) // s]
    assert np.abs(crop.astype(int) - ref.astype(int)).max() <= 1
    assert (crop != ref).mean() < 1e-3


def test_fused_operator_equals_explicit_blur_then_resize(rng):
    spec = DegradationSpec(scale=4, kernel="iso", kernel_size=15, sigma=2.3, blur_border="reflect")
    x = torch.from_numpy(rng.random((2, 3, 64, 48)) * 255)
    fused = blur_and_downsample(x, spec)
    explicit = imresize(blur(x, torch.from_numpy(spec.kernel_array()), "reflect"), 0.25)
    torch.testing.assert_close(fused, explicit, atol=1e-9, rtol=0)


def test_noise_level_is_on_the_255_scale_and_rounded():
    hr = np.full((256, 256, 3), 128, np.uint8)
    spec = DegradationSpec(scale=4, kernel="none", noise=15.0, seed=5)
    diff = apply(hr, spec).astype(float) - 128
    assert diff.std() == pytest.approx(15.0, rel=0.03)
    assert abs(diff.mean()) < 0.3  # rounding is unbiased; flooring would give ≈ −0.5
    assert np.array_equal(diff, np.rint(diff))


def test_same_spec_same_pixels_different_seed_different(photo):
    spec = _specs()[0]
    a, b = apply(photo, spec), apply(photo, spec)
    c = apply(photo, dataclasses.replace(spec, seed=spec.seed + 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_jpeg_is_applied_deterministically(photo):
    base = DegradationSpec(scale=2, kernel="none")
    q = dataclasses.replace(base, jpeg_quality=20)
    clean, jpg = apply(photo, base), apply(photo, q)
    assert not np.array_equal(clean, jpg)
    assert np.array_equal(jpg, jpeg_np(clean, 20))
    assert np.array_equal(jpg, apply(photo, q))


@pytest.mark.parametrize("name", sorted(TEST_PRESETS))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_test_preset_runs_on_non_square_images(name, scale, photo):
    specs = TEST_PRESETS[name](scale)
    assert specs
    for spec in specs.values():
        lr = apply(photo, spec)
        assert lr.shape == (photo.shape[0] // scale, photo.shape[1] // scale, 3) and lr.dtype == np.uint8


def test_test_presets_hold_the_papers_parameters():
    c = TEST_PRESETS["cmdsr"](4)
    assert (c["simple"].sigma, c["simple"].noise, c["simple"].kernel_size) == (0.2, 15.0, 7)
    assert (c["middle"].sigma, c["middle"].noise) == (2.6, 15.0)
    sev = c["severe"]
    assert (sev.kernel, sev.lambda1, sev.lambda2, sev.theta, sev.noise, sev.convention) == (
        "aniso",
        4.0,
        1.0,
        -0.5,
        50.0,
        "eig_var",
    )
    assert list(TEST_PRESETS["cdsr9"](4)) == [
        "1.0_1.0_0.0",
        "5.0_1.0_0.0",
        "5.0_1.0_0.8",
        "5.0_5.0_0.0",
        "9.0_1.0_0.0",
        "9.0_1.0_0.8",
        "9.0_5.0_0.0",
        "9.0_5.0_0.8",
        "9.0_9.0_0.0",
    ]
    assert list(TEST_PRESETS["cdsr9"](2))[-1] == "5.0_5.0_0.0"


def test_samplers_stay_in_their_distributions():
    rng = np.random.default_rng(0)
    cm = [sample_spec(rng, TRAIN_PRESETS["cmdsr_train"](4), 4) for _ in range(2000)]
    sig = {round(s.sigma, 6) for s in cm}
    assert sig == {round(v, 6) for v in sigma_grid(0.2, 4.0, 0.1)} and len(sig) == 39
    assert all(0 <= s.noise <= 75 and s.kernel_size == 15 for s in cm)
    cd = [sample_spec(rng, TRAIN_PRESETS["cdsr_train"](4), 4) for _ in range(500)]
    assert all(0.7 <= s.lambda2 <= s.lambda1 <= 10 and 0 <= s.theta <= np.pi for s in cd)
    assert all(s.noise == 0 and s.kernel_layout == "shifted" and s.downsampler == "sfold" for s in cd)
    da = [sample_spec(rng, TRAIN_PRESETS["dasr_aniso"](4), 4) for _ in range(500)]
    assert any(s.lambda2 > s.lambda1 for s in da) and all(s.convention == "sigma_std" for s in da)
    mixed = DegradationConfig(kernel="mixed", iso_prob=0.3, jpeg_prob=0.5, jpeg_quality_range=[40, 60])
    mx = [sample_spec(rng, mixed, 2) for _ in range(1000)]
    assert 0.25 < np.mean([s.kernel == "iso" for s in mx]) < 0.35
    q = [s.jpeg_quality for s in mx if s.jpeg_quality]
    assert 0.45 < len(q) / 1000 < 0.55 and min(q) >= 40 and max(q) <= 60


def test_sampling_is_reproducible_from_the_seed():
    cfg = TRAIN_PRESETS["dasr_aniso"](4)
    a = [sample_spec(np.random.default_rng(9), cfg, 4) for _ in range(3)]
    b = [sample_spec(np.random.default_rng(9), cfg, 4) for _ in range(3)]
    assert a == b


def test_spec_serialises_and_validates():
    spec = _specs()[1]
    d = json.loads(json.dumps(spec.to_dict()))
    assert DegradationSpec.from_dict(d) == spec
    numpy_typed = {k: (np.float32(v) if isinstance(v, float) else v) for k, v in d.items()}
    assert DegradationSpec.from_dict(numpy_typed).kernel == spec.kernel
    with pytest.raises(ValueError, match="unknown DegradationSpec fields"):
        DegradationSpec.from_dict({**d, "blur": 1})
    with pytest.raises(ValueError, match="needs sigma > 0"):
        DegradationSpec(scale=4, kernel="iso", sigma=0.0)
    with pytest.raises(ValueError, match="odd size"):
        DegradationSpec(scale=4, kernel="iso", sigma=1.0, kernel_size=14)
    assert all(s.context() % s.scale == 0 for s in _specs())


def test_degrade_rejects_bad_shapes():
    spec = DegradationSpec(scale=4, kernel="none")
    with pytest.raises(ValueError, match="not divisible by the scale 4"):
        degrade(torch.zeros(1, 3, 30, 32), spec)
    with pytest.raises(ValueError, match="margin 6 must be a multiple"):
        degrade(torch.zeros(1, 3, 32, 32), spec, margin=6)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        degrade(torch.zeros(3, 32, 32), spec)


@pytest.mark.gpu
def test_cuda_pipeline_matches_cpu(photo):
    for spec in _specs():
        x = _t(mod_crop(photo, 4))
        cpu = degrade(x, spec)
        gpu = degrade(x.cuda(), spec).cpu()
        assert (cpu.int() - gpu.int()).abs().max() <= 1


def test_cdsr9_noise15_is_manets_noisy_test_set():
    """MANet's LR_mode0_noise15: the 9 kernels of cdsr9, then σ 15/255 noise on [0, 1] (15 on 0–255), clamped and
    rounded, with one fixed realisation."""
    clean, noisy = TEST_PRESETS["cdsr9"](4), TEST_PRESETS["cdsr9_noise15"](4)
    assert list(noisy) == list(clean)
    assert all(noisy[k] == dataclasses.replace(clean[k], noise=15.0, seed=0) for k in clean)
    hr = np.full((192, 192, 3), 128, np.uint8)
    diff = apply(hr, noisy["5.0_1.0_0.8"]).astype(float) - apply(hr, clean["5.0_1.0_0.8"]).astype(float)
    assert diff.std() == pytest.approx(15.0, rel=0.05) and abs(diff.mean()) < 0.5
    assert np.array_equal(apply(hr, noisy["5.0_1.0_0.8"]), apply(hr, noisy["5.0_1.0_0.8"]))


def test_clean_fraction_keeps_that_share_of_tasks_noise_free():
    """The official CDSR/MANet training (random_batch_noise, rate_cln = 0.2) leaves a fifth of the LR clean."""
    from blindsr.config import ConfigError, from_dict

    noisy = dataclasses.replace(TRAIN_PRESETS["cdsr_train"](4), noise_range=[0.0, 15.0])
    rng = np.random.default_rng(0)
    mixed = [sample_spec(rng, dataclasses.replace(noisy, clean_fraction=0.2), 4).noise for _ in range(3000)]
    assert 0.18 < np.mean([n == 0 for n in mixed]) < 0.22 and max(mixed) <= 15
    assert all(sample_spec(rng, noisy, 4).noise > 0 for _ in range(300))  # U(0, 15) alone is never exactly 0
    with pytest.raises(ConfigError, match="clean_fraction.*must be in \\[0, 1\\]"):
        from_dict(DegradationConfig, {"clean_fraction": 1.5})


def test_cv2_cubic_is_the_official_cmdsr_training_lr_and_differs_from_matlab_bicubic_as_measured(photo):
    """official_code_diffs §1: the OpenCV LR (no antialiasing) is far from MATLAB bicubic at small σ (26.4 dB
    at σ 0.2 on the measured image) and close at large σ (47.2 dB at 2.6), a 21 dB span; a crop with its context
    margin equals the whole image's LR."""
    from blindsr.metrics import psnr

    hr = mod_crop(photo, 4)
    gap = {}
    for sigma in (0.2, 2.6):
        code = DegradationSpec(scale=4, sigma=sigma, kernel_size=15, downsampler="cv2_cubic")
        gap[sigma] = psnr(apply(hr, code), apply(hr, dataclasses.replace(code, downsampler="bicubic")))
    assert gap[0.2] < 36 and gap[2.6] - gap[0.2] > 15, gap  # here 33.4 and 53.8 dB: the same 20 dB span
    spec = DegradationSpec(scale=4, sigma=1.3, kernel_size=15, downsampler="cv2_cubic", noise=0.0)
    m, top, left, size = spec.context(), 48, 64, 96
    window = hr[top - m : top + size + m, left - m : left + size + m]
    crop = degrade(_t(window), spec, margin=m)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(crop, apply(hr, spec)[top // 4 : (top + size) // 4, left // 4 : (left + size) // 4])
    with pytest.raises(ValueError, match="no circular border"):
        dataclasses.replace(spec, blur_border="circular")


def test_floor_rounding_and_integer_noise_levels_are_the_cmdsr_codes():
    hr = np.full((256, 256, 3), 128, np.uint8)
    spec = DegradationSpec(scale=4, kernel="none", noise=15.0, seed=5)
    rounded = apply(hr, spec).astype(float) - 128
    floored = apply(hr, dataclasses.replace(spec, rounding="floor")).astype(float) - 128
    assert abs(rounded.mean()) < 0.3 and floored.mean() == pytest.approx(-0.5, abs=0.3)  # astype(uint8) bias
    assert np.all((rounded - floored >= 0) & (rounded - floored <= 1))
    code = TRAIN_PRESETS["cmdsr_code_train"](2)
    levels = [sample_spec(np.random.default_rng(i), code, 2).noise for i in range(400)]
    assert set(levels) <= set(map(float, range(75))) and len(set(levels)) > 50  # randint(0, 75)
    assert {sample_spec(np.random.default_rng(i), code, 2).rounding for i in range(3)} == {"floor"}
