"""The consumer side of the stream (``data.feed``): tensors that share the Arrow arrays' memory, only the
training columns, the pixels on the device through pinned memory and a side stream on CUDA; and, on a real
local Ray, ``task_batches`` of the projected training stream against Ray's own ``iter_torch_batches``."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
import torch

from blindsr.config import build_config
from blindsr.data.feed import TRAIN_COLUMNS, Feed, as_tensors


def numpy_batches(count: int = 3, k: int = 2) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        lr = rng.integers(0, 256, (k, 4, 3, 6, 6), dtype=np.uint8)
        hr = rng.integers(0, 256, (k, 4, 3, 12, 12), dtype=np.uint8)
        lr.flags.writeable = hr.flags.writeable = False  # as Ray hands them out of the object store
        out.append({"task_id": np.arange(i * k, (i + 1) * k), "work_s": np.ones(k, np.float32), "lr": lr, "hr": hr})
    return out


def test_tensors_share_the_arrays_memory():
    batch = numpy_batches(1)[0]
    tensors = as_tensors(batch)
    for name, array in batch.items():
        assert tensors[name].data_ptr() == array.ctypes.data and tensors[name].dtype == torch.from_numpy(array).dtype


def test_cpu_feed_yields_every_batch_unchanged_and_counts_its_cost():
    batches = numpy_batches()
    feed = Feed(batches, 2, "cpu", depth=2)
    out = list(feed)
    metrics = feed.metrics()
    assert len(out) == 3 and metrics.consumer_ms >= 0 and metrics.patches_per_s > 0 and feed.total_patches == 24
    assert set(metrics.logged()) >= {"data/patches_per_s", "data/wait_frac", "data/consumer_ms", "data/actors_busy"}
    for got, want in zip(out, batches, strict=True):
        assert set(got) == set(want)
        for name in want:
            assert np.array_equal(got[name].numpy(), want[name])
    with pytest.raises(ValueError, match="data.prefetch_batches must be >= 1, got 0"):
        Feed(batches, 2, "cpu", depth=0)


def test_early_start_asks_for_the_first_batch_at_once_and_yields_all_in_order():
    batches, asked, release = numpy_batches(4), threading.Event(), threading.Event()

    def source():  # a stream whose first batch is slow to come, as Ray Data's is while its actors start
        asked.set()
        release.wait(timeout=60)
        yield from batches

    early = Feed(source(), 2, start_now=True)
    assert asked.wait(timeout=60)  # asked for before anyone iterates: the start-up overlaps the caller's set-up
    release.set()
    out = list(early)
    assert [b["task_id"].tolist() for b in out] == [b["task_id"].tolist() for b in batches]
    assert all(np.shares_memory(got["lr"].numpy(), want["lr"]) for got, want in zip(out, batches, strict=True))
    assert list(Feed(iter([]), 2, start_now=True)) == []


def test_early_start_raises_the_first_batchs_error_in_the_consumer():
    def broken():
        raise FileNotFoundError("shard 3 is gone")
        yield

    early = Feed(broken(), 2, start_now=True)
    with pytest.raises(FileNotFoundError, match="shard 3 is gone"):
        next(iter(early))


def test_prefetch_depth_is_a_checked_config_key():
    assert build_config(overrides=["data.prefetch_batches=4"]).data.prefetch_batches == 4
    with pytest.raises(ValueError, match="data.prefetch_batches in --set: must be >= 1"):
        build_config(overrides=["data.prefetch_batches=0"])


def call_block(first: int, calls: int, k: int) -> pa.Table:
    """A block of ``calls`` call rows of k tasks each, ids from ``first``, as the actors make them (``schema.pack``)."""
    from blindsr.data.schema import pack

    rows = []
    for c in range(calls):
        ids = np.arange(first + c * k, first + (c + 1) * k)
        pixels = pa.FixedShapeTensorArray.from_numpy_ndarray(pixels_of(ids))
        rows.append(pack(pa.table({"task_id": ids, "work_s": np.zeros(k, np.float32), "lr": pixels, "hr": pixels})))
    return pa.concat_tables(rows)


def pixels_of(ids: np.ndarray) -> np.ndarray:
    """(len(ids), 2, 3, 5, 5) uint8, different for every id."""
    return ((ids[:, None] * 31 + np.arange(150)[None]) % 251).astype(np.uint8).reshape(len(ids), 2, 3, 5, 5)


@pytest.mark.parametrize("k", [1, 3, 4, 64])
def test_the_feed_yields_the_streams_call_rows_in_order_as_views_of_them(k):
    blocks = [call_block(0, 1, k), call_block(k, 1, k), call_block(2 * k, 3, k)]  # one call per block, or several
    batches = Feed(blocks, k)
    for _ in range(2):  # an iterable: each pass starts from the first row
        got = list(batches)
        assert [b["task_id"].tolist() for b in got] == [list(range(i * k, (i + 1) * k)) for i in range(5)]
        for b in got:
            assert b["lr"].dtype == torch.uint8 and np.array_equal(b["lr"], pixels_of(b["task_id"].numpy()))
    calls = [chunk.to_numpy_ndarray() for block in blocks for chunk in block["lr"].chunks]
    assert all(any(np.shares_memory(b["lr"].numpy(), call) for call in calls) for b in got)  # no copy
    with pytest.raises(ValueError, match="holds 4 tasks, the consumer steps on 3"):
        list(Feed([call_block(0, 1, 4)], 3))


@pytest.mark.gpu
@pytest.mark.parametrize("depth", [1, 3])
def test_cuda_feed_copies_the_pixels_ahead_and_keeps_the_bookkeeping_on_the_host(depth):
    batches = numpy_batches(5)
    seen = []
    for got in Feed(batches, 2, "cuda", depth=depth):
        assert got["lr"].is_cuda and got["hr"].is_cuda and not got["task_id"].is_cuda
        seen.append(got["lr"].float().sum().item())  # uses it on the current stream, after the side copy
        torch.cuda._sleep(1_000_000)  # a slow step: the next copies run meanwhile
    assert seen == [float(b["lr"].astype(np.float64).sum()) for b in batches]


@pytest.mark.ray
@pytest.mark.slow
def test_task_batches_of_the_training_columns_equal_rays_own_batches(ray_session, tmp_path):
    import ray

    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import task_batches, train_dataset

    cfg = build_config(
        "cmdsr_smoke", overrides=["scaling.num_workers=1", "data.patch_size=12", "scaling.degrade_actors=1"]
    )
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    k, steps = cfg.data.tasks_per_step, 3
    rays = train_dataset(cfg, steps=steps, plan=plan).iter_torch_batches(batch_size=1)  # a call row: one step
    full = [{name: t[0] for name, t in batch.items()} for batch in rays]
    projected = train_dataset(cfg, steps=steps, plan=plan, columns=TRAIN_COLUMNS).materialize()
    for block in projected.iter_batches(batch_size=None, batch_format="pyarrow"):  # one call row of k tasks each
        assert block.num_rows == 1 and block["hr"].num_chunks == 1 and block["hr"].type.shape[0] == k
    meter = task_batches(projected, k, "cpu", depth=2, actors=1)
    ours = list(meter)
    assert len(ours) == len(full) == steps
    for got, want in zip(ours, full, strict=True):
        assert tuple(got) == TRAIN_COLUMNS  # the spec columns never reach the worker
        for name in ("task_id", "lr", "hr"):  # work_s is a timing of each run, not part of the task
            assert torch.equal(got[name], want[name]), name
        assert got["work_s"].dtype == torch.float32 and bool((got["work_s"] >= 0).all())
        assert got["lr"].dtype == torch.uint8
    metrics = meter.metrics().logged()
    assert metrics["data/consumer_ms"] >= 0 and metrics["data/patches_per_s"] > 0
