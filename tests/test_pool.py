"""The node's HR pool (one decoded copy per node, memory-mapped) and its windows, on DIV2K-sized photographs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from blindsr.config import build_config
from blindsr.data.actor import DegradeWorker
from blindsr.data.images import DatasetError
from blindsr.data.patches import TaskSampler
from blindsr.data.pool import INDEX, PIXELS, entry_name, node_pool
from blindsr.data.shards import iter_source_images, write_shards
from blindsr.data.sources import load_folder
from blindsr.data.synthetic import DIV2K_SIZE, write_df2k
from blindsr.data.windows import TASKS_PER_IMAGE, PoolWindows


@pytest.fixture(scope="module")
def df2k(tmp_path_factory):
    """Two DIV2K and one Flickr2K photograph of 2040 × 1356, a small one and a broken file."""
    root = write_df2k(tmp_path_factory.mktemp("df2k"), div2k=2, flickr2k=1)
    Image.fromarray(np.full((40, 50, 3), 7, np.uint8)).save(root / "DIV2K_train_HR" / "0003.png")
    (root / "Flickr2K_HR" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return root


def cfg_for(source: str, cache, *overrides: str):
    return build_config(
        "cmdsr_paper", overrides=[f"data.source={source}", f"data.cache_dir={cache}", "seed=5", *overrides]
    )


def test_the_mapped_pool_equals_the_decoded_images_in_order_with_the_same_skips(df2k, tmp_path):
    mapped = node_pool(str(df2k), min_size=192, cache_dir=tmp_path)
    decoded = load_folder(df2k, min_size=192)
    assert [i.id for i in mapped.pool.images] == [i.id for i in decoded.images]
    assert mapped.pool.images[0].shape == (DIV2K_SIZE[1], DIV2K_SIZE[0])
    for a, b in zip(mapped.pool.images, decoded.images, strict=True):
        assert np.array_equal(a.pixels, b.pixels) and not a.pixels.flags.writeable
    assert mapped.pool.skipped.keys() == decoded.skipped.keys() == {"DIV2K_train_HR/0003.png", "Flickr2K_HR/000002.png"}
    assert mapped.raw_bytes == sum(i.pixels.nbytes for i in decoded.images)
    every = node_pool(str(df2k), cache_dir=tmp_path)  # the small image is in the file too: a patch size picks
    pixels = tmp_path / entry_name(str(df2k)) / PIXELS
    assert pixels.stat().st_size < every.raw_bytes + 4096 * len(every.pool)  # raw pixels and page padding, no more


def test_a_node_builds_once_and_rebuilds_when_a_file_changes(df2k, tmp_path):
    node_pool(str(df2k), cache_dir=tmp_path)
    index = tmp_path / entry_name(str(df2k)) / INDEX
    built = index.stat().st_mtime_ns
    node_pool(str(df2k), min_size=500, cache_dir=tmp_path)  # another patch size maps the same entry
    assert index.stat().st_mtime_ns == built
    copy = tmp_path / "copy"
    (copy / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(copy / "a" / "x.png")
    before = entry_name(str(copy))
    Image.fromarray(np.ones((300, 201, 3), np.uint8)).save(copy / "a" / "x.png")
    assert entry_name(str(copy)) != before and node_pool(str(copy), cache_dir=tmp_path).pool[0].shape == (300, 201)


def test_processes_of_a_node_wait_for_one_build(df2k, tmp_path):
    """Three processes ask at once; all map the same entry and no stale build folder is left."""
    code = f"from blindsr.data.pool import node_pool; node_pool({str(df2k)!r}, cache_dir={str(tmp_path)!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    name = entry_name(str(df2k))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, f"{name}.lock"]


def test_shards_give_the_same_pool_and_cost_only_the_raw_pixels(df2k, tmp_path):
    write_shards(iter_source_images(str(df2k)), str(tmp_path / "shards"), shard_mb=10)
    from_shards = node_pool(str(tmp_path / "shards"), min_size=192, cache_dir=tmp_path / "cache")
    from_folder = node_pool(str(df2k), min_size=192, cache_dir=tmp_path / "cache")
    assert [i.id for i in from_shards.pool.images] == [i.id for i in from_folder.pool.images]
    pairs = zip(from_shards.pool.images, from_folder.pool.images, strict=True)
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in pairs)
    assert from_shards.raw_bytes == from_folder.raw_bytes


def test_an_unwritable_cache_fails_naming_the_key(df2k, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(DatasetError, match=r"data\.cache_dir"):
        node_pool(str(df2k), cache_dir=blocked / "cache")


def test_rows_from_the_mapped_pool_equal_rows_from_the_decoded_pool(df2k, tmp_path):
    """The DegradeWorker's rows are those of a sampler over the images decoded in memory, as before the node pool."""
    cfg = cfg_for(str(df2k), tmp_path, "data.patches_per_task=4", "model.support_size=2")
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    decoded = load_folder(df2k, min_size=cfg.data.patch_size * cfg.scale)
    sampler = TaskSampler(decoded, cfg.data.patch_size, 4, cfg.scale, augment=True)
    for task_id in (0, 7, 123_456_789):
        want = sampler.sample_random(worker.rng(task_id), cfg.degradation)
        got = worker.make(task_id).task
        assert got.image_id == want.image_id and got.spec == want.spec
        assert np.array_equal(got.lr, want.lr) and np.array_equal(got.hr, want.hr)


def test_windows_cover_each_epoch_once_and_are_a_function_of_the_seed():
    w = PoolWindows.plan(images=10, raw_bytes=10 * 2**20, budget_gb=6 / 1024, seed=1, stream=0)
    assert (w.per_window, w.resident, w.tasks_per_window) == (3, False, 3 * TASKS_PER_IMAGE)
    for epoch in range(3):  # 4 windows an epoch: 3 + 3 + 3 + 1 images
        seen = np.concatenate([w.members(4 * epoch + j) for j in range(4)])
        assert sorted(seen.tolist()) == list(range(10))
    assert not np.array_equal(w.members(0), w.members(4))  # each epoch its own order
    assert np.array_equal(w.members(2), PoolWindows.plan(10, 10 * 2**20, 6 / 1024, seed=1).members(2))
    assert not np.array_equal(w.members(0), PoolWindows.plan(10, 10 * 2**20, 6 / 1024, seed=2).members(0))
    assert w.window_of(w.tasks_per_window - 1) == 0 and w.window_of(w.tasks_per_window) == 1
    resident = PoolWindows.plan(images=10, raw_bytes=10 * 2**20, budget_gb=1.0)
    assert resident.resident and resident.window_of(10**9) == 0 and resident.members(5).tolist() == list(range(10))
    assert PoolWindows.plan(images=10, raw_bytes=10 * 2**20, budget_gb=None).resident


def test_a_bounded_pool_draws_each_task_from_its_window_whatever_came_before(df2k, tmp_path):
    """2 images of 8.3 MB under a 10 MB budget: windows of one image; a task's row does not depend on the worker's
    history (a resumed run, another actor), and only its window's image is drawn from."""
    cfg = cfg_for(str(df2k), tmp_path, "data.patches_per_task=2", "model.support_size=1", "data.pool_memory_gb=0.0098")
    a = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    assert (len(a.pool), a.windows.per_window) == (3, 1)
    per = a.windows.tasks_per_window
    ids = [0, per - 1, per, 5 * per + 3, 2]  # forwards, then back to the first window
    rows = [a.make(t) for t in ids]
    for t, row in zip(ids, rows, strict=True):
        (member,) = a.windows.members(a.windows.window_of(t))
        assert row.task.image_id == a.pool[int(member)].id
    b = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    again = b.make(5 * per + 3)
    assert np.array_equal(again.task.lr, rows[3].task.lr) and again.task.spec == rows[3].task.spec
