"""Folder and corpus sources on real files the tests write: every mode, bad files, tiny files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from blindsr.data import corpus
from blindsr.data.images import DatasetError, ImageReadError, read_image
from blindsr.data.sources import load_corpus, load_folder, load_source


@pytest.fixture
def folder(tmp_path, photo):
    root = tmp_path / "hr"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(root / "a.png")
    Image.fromarray(photo).save(root / "b.JPG", quality=95)
    Image.fromarray(photo).save(root / "sub" / "c.bmp")
    Image.fromarray(photo).save(root / "sub" / "d.tif")
    gray16 = photo[..., 1].astype(np.uint16) * 257
    Image.fromarray(gray16).save(root / "e16.png")  # 16-bit grayscale
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(root / "f_rgba.png")
    Image.fromarray(photo).convert("P").save(root / "g_palette.png")
    Image.fromarray(photo[:20, :30]).save(root / "tiny.png")
    (root / "notes.txt").write_text("not an image")
    (root / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    data = (root / "a.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    return root


def test_folder_reads_every_mode_and_skips_bad_files(folder, photo, caplog):
    with caplog.at_level(logging.WARNING):
        pool = load_folder(folder, min_size=64)
    ids = sorted(im.id for im in pool.images)
    assert ids == ["a.png", "b.JPG", "e16.png", "f_rgba.png", "g_palette.png", "sub/c.bmp", "sub/d.tif"]
    for im in pool.images:
        assert im.pixels.dtype == np.uint8 and im.pixels.shape == (*photo.shape[:2], 3)
    by_id = {im.id: im.pixels for im in pool.images}
    assert np.array_equal(by_id["a.png"], photo) and np.array_equal(by_id["sub/d.tif"], photo)
    assert np.array_equal(by_id["f_rgba.png"], photo)
    assert np.array_equal(by_id["e16.png"][..., 0], photo[..., 1])  # 16-bit → 8-bit exactly
    assert set(pool.skipped) == {"tiny.png", "garbage.png", "truncated.png"}
    assert pool.skipped["tiny.png"].startswith("too small")
    assert "skipped 3" in pool.summary()
    assert sum("skipping" in r.message for r in caplog.records) == 3  # one line per bad file


def test_non_recursive_scan(folder):
    ids = {im.id for im in load_folder(folder, min_size=64, recursive=False).images}
    assert "sub/c.bmp" not in ids and "a.png" in ids


def test_missing_empty_and_all_bad_folders_are_clear_errors(tmp_path, photo):
    with pytest.raises(DatasetError, match="does not exist: .*nowhere"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found in .*empty"):
        load_folder(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(photo[:10, :10]).save(bad / "x.png")
    with pytest.raises(DatasetError, match="no usable image .*all 1 files were skipped"):
        load_folder(bad, min_size=96)
    with pytest.raises(DatasetError, match="not a folder"):
        load_folder(bad / "x.png")


def test_read_image_names_the_file(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"nope")
    with pytest.raises(ImageReadError, match="broken.jpg: cannot read image"):
        read_image(p)


def test_corpus_splits_are_disjoint_real_photographs():
    assert not set(corpus.TRAIN) & set(corpus.VAL)
    val = load_corpus("val", min_size=192)
    assert [im.id for im in val.images] == list(corpus.VAL)
    assert all(im.pixels.ndim == 3 and im.pixels.shape[2] == 3 and im.pixels.std() > 10 for im in val.images)
    train = load_source("corpus", "train", min_size=400)
    assert "coins" in train.skipped and len(train) >= 8
    with pytest.raises(ValueError, match="unknown corpus split"):
        load_corpus("test")
