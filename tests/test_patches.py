"""Task sampler: shapes, alignment of LR with HR, shared degradation, seeds, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blindsr.data.images import HRImage, ImagePool
from blindsr.data.patches import TaskSampler, crop_window
from blindsr.data.sources import load_corpus
from blindsr.degradations import TRAIN_PRESETS, DegradationSpec, degrade


@pytest.fixture(scope="module")
def pool() -> ImagePool:
    return load_corpus("val", min_size=96)


@pytest.mark.parametrize("preset", sorted(TRAIN_PRESETS))
def test_task_shapes_and_shared_spec(pool, preset):
    sampler = TaskSampler(pool, patch_size=24, n=5, scale=4)
    task = sampler.sample_random(np.random.default_rng(0), TRAIN_PRESETS[preset](4))
    assert task.lr.shape == (5, 3, 24, 24) and task.hr.shape == (5, 3, 96, 96)
    assert task.lr.dtype == task.hr.dtype == np.uint8
    assert task.image_id in {im.id for im in pool.images}


def test_lr_is_the_degraded_hr_patch(pool):
    """Re-applying the row's spec to its HR patch reproduces its LR away from the patch border."""
    spec = DegradationSpec(scale=4, kernel="iso", sigma=1.5, kernel_size=15, noise=0.0)
    task = TaskSampler(pool, 24, n=4, scale=4).sample(np.random.default_rng(1), spec)
    again = degrade(torch.from_numpy(task.hr), spec).numpy()
    inner = slice(spec.context() // 4, -spec.context() // 4)
    assert np.abs(again[..., inner, inner].astype(int) - task.lr[..., inner, inner].astype(int)).max() <= 1


def test_seed_reproduces_task_and_changes_with_seed(pool):
    sampler = TaskSampler(pool, 16, n=3, scale=2)
    cfg = TRAIN_PRESETS["cmdsr_train"](2)
    a = sampler.sample_random(np.random.default_rng(5), cfg)
    b = sampler.sample_random(np.random.default_rng(5), cfg)
    c = sampler.sample_random(np.random.default_rng(6), cfg)
    assert a.spec == b.spec and np.array_equal(a.lr, b.lr) and np.array_equal(a.hr, b.hr)
    assert not np.array_equal(a.hr, c.hr)


def _gradient_pool() -> ImagePool:
    r, c = np.mgrid[:64, :64]
    img = np.repeat((2 * r + c).astype(np.uint8)[..., None], 3, axis=2)  # orientation is readable
    return ImagePool([HRImage("gradient", img)], "gradient")


def _orientation(patch: np.ndarray) -> tuple[int, int]:
    """(mean step down the rows, mean step along the columns): distinct for each of the 8 flips/rotations."""
    p = patch[0].astype(float)
    return round(float(np.diff(p, axis=0).mean())), round(float(np.diff(p, axis=1).mean()))


def test_augmentation_covers_the_dihedral_group_and_can_be_shared():
    spec = DegradationSpec(scale=2, kernel="none")
    rng = np.random.default_rng(3)
    plain = TaskSampler(_gradient_pool(), 8, n=16, scale=2, augment=False).sample(rng, spec)
    assert {_orientation(p) for p in plain.hr} == {(2, 1)}
    aug = TaskSampler(_gradient_pool(), 8, n=64, scale=2, augment=True).sample(rng, spec)
    assert len({_orientation(p) for p in aug.hr}) == 8
    shared = TaskSampler(_gradient_pool(), 8, n=2, scale=2, same_augment=True)
    seen = set()
    for _ in range(12):
        q, k = shared.sample(rng, spec).hr
        assert _orientation(q) == _orientation(k)
        seen.add(_orientation(q))
    assert len(seen) > 1


def test_each_crop_gets_the_flip_albumentations_d4_pipeline_gives_its_seed(rng):
    """The functional path equals the library's own ``Compose([D4(p=1)])`` seeded per crop, for every seed drawn,
    on a window with a mirrored margin (rows are the ones made before the pipeline call was taken out)."""
    import albumentations

    pipeline = albumentations.Compose([albumentations.D4(p=1.0)])
    sampler = TaskSampler(_gradient_pool(), 8, n=1, scale=2)
    window = crop_window(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), 1, 2, 16, 3)  # 22², mirrored at the top
    seen = set()
    for seed in rng.integers(2**31 - 1, size=300).tolist():
        pipeline.set_random_seed(seed)
        expected = pipeline(image=window)["image"]
        into = np.zeros_like(window)
        assert sampler._augment(window, seed, into) is into and np.array_equal(into, expected), seed
        seen.add(into.tobytes())
    assert len(seen) == 8  # all eight flips/rotations drawn


def test_sampler_validates_pool_and_scale(pool):
    with pytest.raises(ValueError, match="smaller than the 480 px HR patch"):
        TaskSampler(pool, patch_size=120, n=2, scale=4)
    s = TaskSampler(pool, 16, n=2, scale=4)
    with pytest.raises(ValueError, match="spec scale ×2 differs"):
        s.sample(np.random.default_rng(0), DegradationSpec(scale=2, kernel="none"))


def test_crop_window_mirrors_outside_the_image(rng):
    img = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    win = crop_window(img, 0, 0, 4, 2)
    assert win.shape == (8, 8, 3)
    assert np.array_equal(win[2:6, 2:6], img[:4, :4])
    assert np.array_equal(win[1, 2:6], img[1, :4]) and np.array_equal(win[0, 2:6], img[2, :4])  # reflect-101
    assert crop_window(img, 3, 3, 4, 2).base is not None  # inside: a view, no copy
