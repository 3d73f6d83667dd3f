"""The data plane: Arrow task rows, HR shards, DegradeWorker, and the Ray Data streams on a real local Ray."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from blindsr.config import Config, ScalingConfig, build_config
from blindsr.data.actor import DegradeWorker
from blindsr.data.images import DatasetError
from blindsr.data.patches import Task
from blindsr.data.schema import ID_BYTES, TaskRow, _column, decode, decode_specs, encode, pack
from blindsr.data.shards import load_shards, write_shards
from blindsr.data.sources import load_source
from blindsr.degradations import DegradationSpec, degrade

K, N, P, S = 4, 4, 16, 2  # tasks per batch, patches per task, LR patch side, scale


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo):
    """Three small non-square HR images and one broken file."""
    root = tmp_path_factory.mktemp("hr")
    Image.fromarray(photo[:60, :90]).save(root / "a.png")
    Image.fromarray(photo[100:172, 200:250]).save(root / "b.png")
    Image.fromarray(photo[200:260, 300:380]).save(root / "sub_c.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return root


def small_cfg(source: str, *overrides: str) -> Config:
    return build_config(
        overrides=[
            f"data.source={source}",
            f"data.val_source={source}",
            f"scale={S}",
            f"data.patch_size={P}",
            f"data.patches_per_task={N}",
            f"model.support_size={N // 2}",  # CMDSR: a support half and a query half
            f"data.tasks_per_step={K}",
            "seed=3",
            "degradation.kernel_size=7",
            "degradation.sigma_range=[0.5,1.5]",
            "degradation.noise_range=[0,30]",
            *overrides,
        ]
    )


def check_rows(lr: np.ndarray, hr: np.ndarray, specs: list[DegradationSpec]) -> None:
    """Every patch of a row was made with the row's spec: re-degrading its HR gives its LR (inside the margin)."""
    assert lr.shape[1:] == (N, 3, P, P) and hr.shape[1:] == (N, 3, S * P, S * P)
    assert lr.dtype == hr.dtype == np.uint8
    for i, spec in enumerate(specs):
        again = degrade(torch.from_numpy(np.array(hr[i])), spec).numpy()
        m = spec.context() // S
        diff = np.abs(again[..., m:-m, m:-m].astype(int) - lr[i][..., m:-m, m:-m].astype(int))
        assert diff.max() <= 1, f"row {i}: LR does not match its spec {spec.label()}"


# ---- schema -------------------------------------------------------------------------------------------


def test_schema_round_trip_is_exact_and_zero_copy(folder):
    cfg = small_cfg(str(folder))
    worker = DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
    rows = [worker.make(t) for t in (5, 6, 7)]
    rows[1] = TaskRow(rows[1].task_id, rows[1].task, DegradationSpec(scale=S, kernel="iso", sigma=0.7, kernel_size=7))
    rows[2].task.image_id = "ü/" + "x" * 200  # non-ASCII, longer than ID_BYTES
    table = encode(rows)
    assert table.num_rows == 3 and table.column("lr").type.shape == [N, 3, P, P]
    back = decode(table)
    for a, b in zip(rows[:2], back[:2], strict=True):
        assert (a.task_id, a.task.spec, a.key_spec, a.task.image_id) == (
            b.task_id,
            b.task.spec,
            b.key_spec,
            b.task.image_id,
        )
        assert np.array_equal(a.task.lr, b.task.lr) and np.array_equal(a.task.hr, b.task.hr)
        assert b.work_s == pytest.approx(a.work_s, rel=1e-6)
    assert back[2].task.image_id == ("ü/" + "x" * 200).encode()[-ID_BYTES:].decode()
    # zero-copy: decoded patches are views of the Arrow buffers, and so are those of the numpy batch Ray hands on
    lr_buffer = table.column("lr").chunk(0).to_numpy_ndarray()
    assert np.shares_memory(back[0].task.lr, lr_buffer)
    batch = {name: table.column(name).chunk(0) for name in table.column_names}
    numpy_batch = {
        k: v.to_numpy_ndarray() if isinstance(v.type, pa.FixedShapeTensorType) else v.to_numpy()
        for k, v in batch.items()
    }
    assert np.shares_memory(decode(numpy_batch)[0].task.hr, table.column("hr").chunk(0).to_numpy_ndarray())
    torch_batch = {k: torch.from_numpy(np.array(v)) for k, v in numpy_batch.items()}
    assert decode_specs(torch_batch) == [r.task.spec for r in rows]
    assert decode_specs(table, "key_")[1] == rows[1].key_spec


def test_an_actor_of_one_cpu_runs_opencv_on_one_thread(folder, monkeypatch):
    cfg, before = small_cfg(str(folder)), cv2.getNumThreads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in an actor of num_cpus=1
    try:
        DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


def test_encode_rejects_mixed_shapes_and_keys(folder):
    cfg = small_cfg(str(folder))
    row = DegradeWorker(cfg.data, cfg.degradation, S, seed=3).make(0)
    t = row.task
    other = TaskRow(1, Task(t.lr[:2], t.hr[:2], t.spec, t.image_id))
    with pytest.raises(ValueError, match="differ from the batch's first task"):
        encode([row, other])
    wider_kernel = TaskRow(1, t, DegradationSpec(scale=S, kernel="iso", sigma=0.7, kernel_size=9))
    with pytest.raises(ValueError, match="key spec .* beyond"):
        encode([wider_kernel])
    with pytest.raises(ValueError, match="at least one"):
        encode([])


@pytest.mark.parametrize(
    "overrides", [[], ["scaling.degrade_on=trainer"], ["data.sampler=pair", "data.moco_positive=other_image"]]
)
def test_a_call_row_written_in_place_equals_its_tasks_encoded_one_by_one(folder, overrides):
    """The actor's call rows: each task writes its pixels into its slot of the row, and encode copies none."""
    cfg = small_cfg(str(folder), *overrides)
    kw = {"degrade_on": cfg.scaling.degrade_on, "tasks_per_row": 3}
    (row,) = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, first_task=6, **kw)({"id": np.array([1])})
    alone = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, **kw)
    expected = pack(encode([alone.make(t) for t in (9, 10, 11)]))
    for name in set(expected.column_names) - {"work_s"}:
        assert np.array_equal(_column(row, name), _column(expected, name)), name
    rows = [alone.make(t) for t in (9, 10)]
    with pytest.raises(ValueError, match="are not the slots of the given"):
        encode(rows, pixels=(None, np.stack([r.task.hr for r in rows])))


def test_a_call_rows_buffer_serves_again_only_once_nothing_holds_its_row(folder):
    cfg = small_cfg(str(folder))
    worker = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, tasks_per_row=2)
    held = [next(iter(worker({"id": np.array([c])}))) for c in range(5)]  # more rows kept than spare buffers
    again = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, tasks_per_row=2)
    for c, row in enumerate(held):
        expected = next(iter(again({"id": np.array([c])})))
        for name in ("lr", "hr"):
            assert np.array_equal(_column(row, name), _column(expected, name)), (c, name)
    address = lambda row: _column(row, "hr").__array_interface__["data"][0]  # noqa: E731
    dropped = address(next(iter(worker({"id": np.array([9])}))))
    assert address(next(iter(worker({"id": np.array([10])})))) == dropped  # its buffer made the next row


# ---- shards -------------------------------------------------------------------------------------------


def test_shards_round_trip_local_and_uri(tmp_path, folder, photo):
    images = [("a", photo), ("b", photo[:50, :70]), ("c", photo[::2, ::3].copy())]
    files = write_shards(iter(images), str(tmp_path / "s"), shard_mb=photo.nbytes / 2**20)
    assert len(files) == 2  # first shard closes once it holds ≥ shard_mb
    for location in (str(tmp_path / "s"), (tmp_path / "s").as_uri()):
        pool = load_source(location, min_size=60)
        assert [im.id for im in pool.images] == ["a", "c"] and set(pool.skipped) == {"b"}
        assert np.array_equal(pool.images[0].pixels, photo) and np.array_equal(pool.images[1].pixels, photo[::2, ::3])
        assert not pool.images[0].pixels.flags.writeable
    with pytest.raises(DatasetError, match="already holds 2"):
        write_shards(iter(images), str(tmp_path / "s"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .parquet shards"):
        load_shards(str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match="does not exist"):
        load_shards((tmp_path / "nowhere").as_uri())


def test_prepare_shards_job_skips_bad_images(tmp_path, folder):
    res = subprocess.run(
        [sys.executable, "jobs/prepare_shards.py", str(folder), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "skipped broken.png" in res.stdout and "packed 3 images into 1 shard(s)" in res.stdout
    pool = load_source(str(tmp_path / "out"))
    assert sorted(im.id for im in pool.images) == ["a.png", "b.png", "sub_c.png"]


# ---- DegradeWorker in-process -------------------------------------------------------------------------


def test_worker_skips_and_counts_bad_images(folder):
    worker = DegradeWorker(small_cfg(str(folder)).data, small_cfg(str(folder)).degradation, S, seed=3)
    assert list(worker.pool.skipped) == ["broken.png"] and len(worker.pool) == 3
    assert {worker.make(t).task.image_id for t in range(20)} <= {"a.png", "b.png", "sub_c.png"}


def test_rows_depend_only_on_seed_stream_and_task_id(folder):
    cfg = small_cfg(str(folder))
    a = DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
    b = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, first_task=10)
    a.make(99)  # a worker's history does not matter
    ra, rb = a.make(12), b({"id": np.array([2])})  # call 2 of one task: task 10 + 2
    rb = decode(pa.concat_tables(rb))[0]
    assert ra.task.spec == rb.task.spec and np.array_equal(ra.task.lr, rb.task.lr) and rb.task_id == 12
    other_seed = DegradeWorker(cfg.data, cfg.degradation, S, seed=4).make(12)
    val = DegradeWorker(cfg.data, cfg.degradation, S, seed=3, stream="val").make(12)
    assert other_seed.task.spec != ra.task.spec and val.task.spec != ra.task.spec


@pytest.mark.parametrize("positive", ["same", "other_image", "other_degradation"])
def test_pair_rows_follow_moco_positive(folder, positive):
    cfg = small_cfg(
        str(folder),
        "data.sampler=pair",
        "data.patches_per_task=2",
        "model.support_size=1",
        f"data.moco_positive={positive}",
    )
    worker = DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
    rows = decode(pa.concat_tables(worker({"id": np.arange(6)})))
    for r in rows:
        assert r.task.lr.shape == (2, 3, P, P)
        # one degrade call per degradation: all patches when they share it, else the query and the keys apart
        groups = (
            [(slice(0, 2), r.task.spec)]
            if r.key_spec is None
            else [(slice(0, 1), r.task.spec), (slice(1, 2), r.key_spec)]
        )
        for patches, spec in groups:
            m = spec.context() // S
            again = degrade(torch.from_numpy(np.array(r.task.hr[patches])), spec).numpy()
            assert np.abs(again[..., m:-m, m:-m].astype(int) - r.task.lr[patches][..., m:-m, m:-m]).max() <= 1
        if positive == "same":
            assert r.key_spec is None
        elif positive == "other_image":  # same degradation, another noise draw
            assert r.key_spec.seed != r.task.spec.seed and r.key_spec.sigma == r.task.spec.sigma
        else:
            assert r.key_spec.sigma != r.task.spec.sigma or r.key_spec.noise != r.task.spec.noise


def test_only_the_stream_imports_ray_and_the_actor_class_unpickles_without_torch():
    """Ray Data's split coordinator and Ray Train's dataset manager unpickle the DegradeWorker class and its
    configs: without torch, albumentations or Ray each of those processes starts seconds sooner."""
    code = "import sys, blindsr.data.schema, blindsr.data.shards, blindsr.data.actor, blindsr.config; "
    code += "print([m for m in ('ray', 'torch', 'albumentations') if m in sys.modules])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


# ---- resource rule (pure planning) ----------------------------------------------------------------------


def test_plan_shrinks_actors_to_keep_a_read_cpu():
    from blindsr.data.plan import READ_CPUS, plan_resources

    # the #44687 deadlock setting: 4 CPUs, 2 train workers × 1 CPU, 2 actors × 1 CPU
    plan = plan_resources(ScalingConfig(num_workers=2, degrade_actors=2), {"CPU": 4})
    assert plan.cpus_per_actor == 0.5 and plan.free_cpus >= READ_CPUS
    roomy = plan_resources(ScalingConfig(num_workers=1, degrade_actors=2), {"CPU": 16})
    assert roomy.cpus_per_actor == 1.0 and roomy.free_cpus == 13


def test_plan_that_cannot_fit_says_what_to_change():
    from blindsr.data.plan import DataPlanError, plan_resources

    with pytest.raises(DataPlanError, match=r"leaves 0 for 2 degradation actor.*scaling\.degrade_actors"):
        plan_resources(ScalingConfig(num_workers=3, degrade_actors=2), {"CPU": 4})
    with pytest.raises(DataPlanError, match="degrade_gpu_fraction"):
        plan_resources(ScalingConfig(degrade_gpu_fraction=0.5, degrade_actors=3, use_gpu=False), {"CPU": 16, "GPU": 1})


@pytest.mark.parametrize("calls, per_block", [(10, 3), (1, 16), (64, 16), (5, 1)])
def test_call_source_yields_every_call_once_in_order_in_small_blocks(calls, per_block):
    from blindsr.data.stream import CallSource

    (task,) = CallSource(calls, per_block, cursor=None, lead=calls).get_read_tasks(1)
    blocks = [b.column("id").to_numpy() for b in task()]
    assert [len(b) for b in blocks[:-1]] == [per_block] * (len(blocks) - 1) and 1 <= len(blocks[-1]) <= per_block
    assert np.array_equal(np.concatenate(blocks), np.arange(calls))


def test_auto_actors_grow_from_one_to_what_fits_and_refuse_a_full_cluster():
    from blindsr.data.plan import DataPlanError, plan_resources
    from blindsr.data.stream import map_kwargs

    plan = plan_resources(ScalingConfig(num_workers=2, degrade_actors="auto", degrade_cpus_per_actor=2), {"CPU": 16})
    assert (plan.actors, plan.max_actors, plan.free_cpus) == (1, 6, 2.0)  # 16 - 2 training - 1 read = 13 = 6 × 2 + 1
    compute = map_kwargs(plan)["compute"]
    assert (compute.min_size, compute.max_size) == (1, 6)
    assert plan.params() == {"data/actors_min": 1, "data/actors_max": 6, "data/actor_cpus": 2.0}
    assert "auto 1–6" in plan.describe()
    squeezed = plan_resources(ScalingConfig(num_workers=2, degrade_actors="auto"), {"CPU": 3.5})
    assert (squeezed.actors, squeezed.max_actors, squeezed.cpus_per_actor) == (1, 1, 0.5)
    assert squeezed.describe().startswith("auto 1 (all that fits")  # the line says it was sized, and why
    with pytest.raises(DataPlanError, match=r"scaling\.degrade_actors: auto finds no CPU"):
        plan_resources(ScalingConfig(num_workers=3, degrade_actors="auto"), {"CPU": 4})


def test_gpu_fraction_builds_the_gpu_request():
    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import map_kwargs

    plan = plan_resources(
        ScalingConfig(degrade_actors=2, degrade_gpu_fraction=0.25, use_gpu=True), {"CPU": 8, "GPU": 2}
    )
    kwargs = map_kwargs(plan)
    assert plan.device == "cuda" and kwargs["num_gpus"] == 0.25 and kwargs["num_cpus"] == 1.0
    assert kwargs["compute"].min_size == kwargs["compute"].max_size == 2
    assert "num_gpus" not in map_kwargs(plan_resources(ScalingConfig(), {"CPU": 4}))


# ---- Ray Data streams ---------------------------------------------------------------------------------


def collect(ds) -> list[dict[str, np.ndarray]]:
    """A stream's call rows as numpy batches of the row's tasks."""
    return [{k: v[0] for k, v in b.items()} for b in ds.iter_batches(batch_size=1, batch_format="numpy")]


@pytest.mark.ray
@pytest.mark.slow
def test_train_stream_under_training_load_groups_every_batch(ray_session, folder):
    """2 CPUs held by stand-in train workers, 2 actors asked at 1 CPU: the plan shrinks them, nothing hangs."""
    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import task_batches, train_dataset

    ray = ray_session

    @ray.remote(num_cpus=1)
    class StandInTrainWorker:
        def ready(self) -> bool:
            return True

    held = [StandInTrainWorker.remote() for _ in range(2)]
    ray.get([h.ready.remote() for h in held])
    cfg = small_cfg(str(folder), "scaling.num_workers=2", "scaling.degrade_actors=2")
    plan = plan_resources(cfg.scaling, ray.cluster_resources())
    assert plan.cpus_per_actor == 0.5 and plan.free_cpus >= 1
    steps = 3
    meter = task_batches(train_dataset(cfg, steps=steps, plan=plan), K, actors=plan.actors, consumers=2)
    batches = list(meter)
    assert len(batches) == steps * 2  # both "workers'" shares, read by one consumer here
    local = DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
    for batch in batches:
        assert batch["lr"].shape == (K, N, 3, P, P) and batch["lr"].dtype == torch.uint8
        assert batch["hr"].shape == (K, N, 3, S * P, S * P) and batch["hr"].dtype == torch.uint8
        specs = decode_specs(batch)
        check_rows(batch["lr"].numpy(), batch["hr"].numpy(), specs)
        for i, task_id in enumerate(batch["task_id"].tolist()):  # the same rows in-process: seeds reproduce
            row = local.make(task_id)
            assert row.task.spec == specs[i] and np.array_equal(row.task.lr, batch["lr"][i].numpy())
    assert sorted(int(t) for b in batches for t in b["task_id"]) == list(range(steps * K * 2))
    metrics = meter.metrics()
    assert metrics.patches_per_s > 0 and 0 <= metrics.wait_frac <= 1 and metrics.actor_util > 0
    for h in held:
        ray.kill(h)


@pytest.mark.ray
@pytest.mark.slow
def test_val_stream_is_identical_across_runs(ray_session, folder):
    """Two runs, and even two pool sizes (so other actors make each row), give the same rows in the same order."""
    from blindsr.data.stream import build_dataset

    runs = [collect(build_dataset(small_cfg(str(folder), f"scaling.degrade_actors={a}"), "val", 9)) for a in (2, 1)]
    first, second = ({k: np.concatenate([b[k] for b in run]) for k in run[0]} for run in runs)
    assert first["task_id"].tolist() == list(range(9))  # in task order, none made twice or left out
    for name in first:
        if name != "work_s":
            assert np.array_equal(first[name], second[name]), name
    check_rows(first["lr"], first["hr"], decode_specs(first))


@pytest.mark.ray
@pytest.mark.slow
def test_a_paper_length_stream_starts_at_its_first_call_and_stays_a_lead_ahead(ray_session, folder):
    """64M tasks, as CMDSR's paper schedule on 8 workers: the source yields call ids lazily, never more than its
    lead ahead of the calls the actors have begun, and the rows are those of task ids 0, 1, … in order."""
    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import BLOCK_TASKS, TASKS_IN_FLIGHT, StreamCursor, build_dataset

    cfg = small_cfg(str(folder))
    plan = plan_resources(cfg.scaling, ray_session.cluster_resources(), reserve_train=False)
    cursor = StreamCursor.remote()
    ds = build_dataset(cfg, "train", 64_000_000, plan=plan, tasks_per_row=K, cursor=cursor)
    rows = []
    for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
        rows.append(batch["task_id"][0])
        issued, begun = ray_session.get(cursor.state.remote())
        lead = TASKS_IN_FLIGHT * max(1, BLOCK_TASKS // K) * (plan.max_actors + 1)
        assert issued - begun <= lead + BLOCK_TASKS // K, (issued, begun)
        if len(rows) == 12:
            break
    assert np.concatenate(rows).tolist() == list(range(12 * K))
    local = DegradeWorker(cfg.data, cfg.degradation, S, seed=3)
    assert np.array_equal(local.make(12 * K - 1).task.lr, batch["lr"][0][-1])


@pytest.mark.ray
@pytest.mark.slow
def test_stream_survives_a_killed_actor(ray_session, folder, tmp_path):
    """An actor SIGKILLs itself in the middle of its first batch (tests/faults.py), so the stream is running
    when it dies whatever the machine's speed: Ray restarts it, re-runs the batch, and every row arrives once,
    in task-id order."""
    from ray._private.state import actors

    from blindsr.data.stream import train_dataset
    from faults import kill_once_worker

    cfg = small_cfg(str(folder), "scaling.degrade_actors=2")
    steps, marker = 12, tmp_path / "actor.killed"
    earlier = set(actors())  # actors of earlier tests' streams linger in the table: never count those
    seen = [
        int(t)
        for b in collect(train_dataset(cfg, steps=steps, worker_cls=kill_once_worker(marker)))
        for t in b["task_id"]
    ]
    assert marker.exists()
    assert seen == list(range(steps * K))  # every step, no row lost or doubled, in order
    restarted = [
        info["NumRestarts"]
        for a, info in actors().items()
        if "KillOnceDegradeWorker" in info["ActorClassName"] and a not in earlier
    ]
    assert max(restarted) >= 1, restarted


@pytest.mark.ray
def test_missing_source_and_unfittable_plan_fail_before_any_actor_starts(ray_session, folder, tmp_path):
    from blindsr.data.plan import DataPlanError
    from blindsr.data.stream import train_dataset

    with pytest.raises(DatasetError, match="does not exist"):
        train_dataset(small_cfg(str(tmp_path / "nowhere")), steps=1)
    with pytest.raises(DataPlanError, match="scaling.num_workers"):
        train_dataset(small_cfg(str(folder), "scaling.num_workers=3", "scaling.degrade_actors=4"), steps=1)
