"""Benchmark layouts, mod-crop, the LR cache and DIV2KRK, on files the tests write."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from blindsr.data.benchmarks import benchmark_dir, cached_lr, load_benchmark, load_div2krk
from blindsr.data.images import DatasetError
from blindsr.degradations import TEST_PRESETS, apply


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.mark.parametrize(
    ("layout", "name"),
    [("Set5/HR/{}.png", "Set5"), ("BSD100/{}.png", "B100"), ("Set14/image_SRF_4/{}_HR.png", "Set14")],
)
def test_layouts_and_mod_crop(tmp_path, photo, layout, name):
    for i in range(2):
        _save(tmp_path / layout.format(f"img{i}"), photo[: 101 + i, : 77 + i])
    if "SRF" in layout:
        _save(tmp_path / "Set14/image_SRF_4/img0_LR.png", photo[:25, :19])  # LR files are ignored
    images = load_benchmark(tmp_path, name, scale=4)
    assert len(images) == 2
    assert all(im.shape[0] % 4 == 0 and im.shape[1] % 4 == 0 for im in images)
    assert images[0].shape == (100, 76)


def test_unknown_or_missing_benchmark(tmp_path):
    with pytest.raises(DatasetError, match="unknown benchmark 'Set6'"):
        benchmark_dir(tmp_path, "Set6")
    with pytest.raises(DatasetError, match="Urban100 not found under"):
        benchmark_dir(tmp_path, "Urban100")
    with pytest.raises(DatasetError, match="does not exist"):
        benchmark_dir(tmp_path / "nope", "Set5")


def test_lr_cache_reuses_pixels_and_regenerates_on_spec_change(tmp_path, photo):
    _save(tmp_path / "Set5" / "a.png", photo[:96, :128])
    images = load_benchmark(tmp_path, "Set5", 4)
    specs = TEST_PRESETS["cmdsr"](4)
    first = cached_lr(images, specs["middle"], tmp_path / "cache")
    mtime = (tmp_path / "cache" / "a.png").stat().st_mtime_ns
    again = cached_lr(images, specs["middle"], tmp_path / "cache")
    assert np.array_equal(first[0], again[0]) and (tmp_path / "cache" / "a.png").stat().st_mtime_ns == mtime
    assert np.array_equal(first[0], apply(images[0].pixels, specs["middle"]))
    other = cached_lr(images, specs["severe"], tmp_path / "cache")
    assert not np.array_equal(other[0], first[0])
    assert np.array_equal(other[0], apply(images[0].pixels, specs["severe"]))


def test_div2krk_reads_pairs_and_kernels(tmp_path, photo, caplog):
    hr = photo[:96, :128]
    (tmp_path / "gt_k_x4").mkdir()
    for i in (1, 2):
        _save(tmp_path / "gt" / f"img_{i}_gt.png", hr)
        _save(tmp_path / "lr_x4" / f"im_{i}.png", hr[::4, ::4])
        savemat(tmp_path / "gt_k_x4" / f"kernel_{i}.mat", {"Kernel": np.eye(31) / 31})
    pairs = load_div2krk(tmp_path, 4)
    assert [p.id for p in pairs] == ["1", "2"]
    assert pairs[0].lr.shape == (24, 32, 3) and pairs[0].kernel.shape == (31, 31)
    _save(tmp_path / "lr_x4" / "im_3.png", hr[:20, :20])
    _save(tmp_path / "gt" / "img_3_gt.png", hr)
    _save(tmp_path / "lr_x4" / "im_4.png", hr[:20, :24])
    _save(tmp_path / "gt" / "img_4_gt.png", hr)
    with caplog.at_level("WARNING", logger="blindsr.data.benchmarks"):
        assert [p.id for p in load_div2krk(tmp_path, 4)] == ["1", "2"]  # the two mismatched pairs are skipped
    lines = [r.getMessage() for r in caplog.records]
    assert sum("skipping" in m and "im_3.png" in m and "img_3_gt.png" in m for m in lines) == 1
    assert (
        sum("skipping" in m for m in lines) == 2
        and "DIV2KRK: skipped 2 pair(s) whose sizes do not match, kept 2" in lines
    )
    for i in (1, 2):
        (tmp_path / "lr_x4" / f"im_{i}.png").unlink()
    with pytest.raises(DatasetError, match="no usable im_<i> pair .*2 size-mismatched"):
        load_div2krk(tmp_path, 4)
    with pytest.raises(DatasetError, match="DIV2KRK folder missing: .*lr_x2"):
        load_div2krk(tmp_path, 2)
