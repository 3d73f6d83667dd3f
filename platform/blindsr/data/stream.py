"""The Ray Data datasets that ``TorchTrainer(datasets=...)`` consumes: task rows made by DegradeWorker actors.

``ray.data.range(N) → map_batches(DegradeWorker, ActorPoolStrategy(size=W))``; one row is one task
(``blindsr.data.schema``). A train worker reads::

    shard = ray.train.get_dataset_shard("train")
    for batch in DataMeter(task_batches(shard, k, device, depth), actors=plan.actors, consumers=world):
        batch["lr"]  # (k, n, 3, h, w) uint8 on the device; batch["hr"] (k, n, 3, s·h, s·w); task_id, work_s (k,)

* train: ``steps × k × consumers`` rows, so every consumer gets exactly ``steps`` batches of k (Ray 2.60 has no
  unbounded source; a bounded range is the endless stream's honest form). A row is a function of its task
  id, so a resumed run passes ``first_task`` to continue past the tasks it has already seen.
* ``build_dataset(cfg, "val", n)``: n rows from ``data.val_source``, no augmentation, in order: identical on
  every run with the same seed (in-training validation reads whole images instead: ``blindsr.evaluation.validation``).

The actor pool is sized by :mod:`blindsr.data.plan` (:func:`~blindsr.data.plan.plan_resources`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import ray
import ray.data
import torch
from ray.data import DataIterator
from ray.data.block import BlockAccessor

from blindsr.config import Config
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import DeviceFeed, EarlyStart
from blindsr.data.plan import DataPlan, plan_resources, preflight

log = logging.getLogger(__name__)

MAX_READ_BLOCKS = 4096  # caps the read tasks of a long run
ROWS_PER_BLOCK = 64  # task ids per read block: a retried (killed) actor task re-makes at most this many rows


def map_kwargs(plan: DataPlan) -> dict[str, Any]:
    """The ``map_batches`` resource arguments of the actor pool (a fixed size: autoscaling pools can starve).

    Fault tolerance is Ray Data's default for actor pools, ``max_restarts=-1, max_task_retries=-1``: a crashed
    actor is restarted and its batches re-run, which gives the same rows (they are deterministic). Passing
    those two explicitly is deprecated in 2.60 (``ray_remote_args``, removed in 2.64); the actor-failure test
    pins the behaviour instead.
    """
    kwargs: dict[str, Any] = {"compute": ray.data.ActorPoolStrategy(size=plan.actors), "num_cpus": plan.cpus_per_actor}
    if plan.gpus_per_actor > 0:
        kwargs["num_gpus"] = plan.gpus_per_actor
    return kwargs


def rows_per_block(num_tasks: int, batch: int, actors: int) -> int:
    """Task ids per read block: a multiple of the actors' ``batch`` (so each block is whole actor calls, and a
    consumer's k-row batches are views of one call's output: :class:`KRowBatches`), at most
    :data:`ROWS_PER_BLOCK` unless that would exceed :data:`MAX_READ_BLOCKS`, and ≥ 2 blocks per actor when the
    stream has that many actor calls."""
    calls = min(ROWS_PER_BLOCK // batch, num_tasks // (2 * actors * batch))
    calls = max(calls, 1, math.ceil(num_tasks / (MAX_READ_BLOCKS * batch)))
    return calls * batch


def build_dataset(
    cfg: Config,
    stream: Literal["train", "val"],
    num_tasks: int,
    first_task: int = 0,
    plan: DataPlan | None = None,
    worker_cls: type[DegradeWorker] = DegradeWorker,
    console: Any = None,
) -> ray.data.Dataset:
    """``num_tasks`` task rows (ids ``first_task …``, in that order) made by a fixed pool of ``worker_cls`` actors.

    Rows come out in task-id order (``preserve_order``): a run's data order is a function of its seed, and a
    resumed run continues exactly where its checkpoint left the stream. Returns a lazy dataset of rows
    ``schema.task_schema(cfg.data.patches_per_task, p, p, cfg.scale)``.
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    preflight(cfg.data.source if stream == "train" else cfg.data.val_source)
    plan = plan or plan_resources(cfg.scaling, ray.cluster_resources())
    batch = min(cfg.data.tasks_per_step, ROWS_PER_BLOCK)
    rows = rows_per_block(num_tasks, batch, plan.actors)
    blocks = math.ceil(num_tasks / rows)
    # Ray's range splits its ids evenly over the blocks (400 in 7 are 57 each: 14 actor calls of 4 and one of 1,
    # after which every consumer batch would straddle two calls); whole blocks of ``rows``, then the limit.
    ids = ray.data.range(blocks * rows, override_num_blocks=blocks)
    ds = (ids.limit(num_tasks) if blocks * rows > num_tasks else ids).map_batches(
        worker_cls,
        fn_constructor_kwargs={
            "data": cfg.data,
            "degradation": cfg.degradation,
            "scale": cfg.scale,
            "seed": cfg.seed,
            "stream": stream,
            "first_task": first_task,
            "device": plan.device,
            "degrade_on": cfg.scaling.degrade_on if stream == "train" else "actor",
            **({"console": console} if console is not None else {}),  # a progress channel (train.progress)
        },
        batch_size=batch,
        batch_format="numpy",
        **map_kwargs(plan),
    )
    ds.context.execution_options.preserve_order = True
    return ds


def train_dataset(
    cfg: Config,
    steps: int | None = None,
    first_task: int = 0,
    plan: DataPlan | None = None,
    worker_cls: type[DegradeWorker] = DegradeWorker,
    console: Any = None,
    columns: Sequence[str] | None = None,
) -> ray.data.Dataset:
    """Training rows for ``steps`` (default ``cfg.train.steps``) batches of ``data.tasks_per_step`` per train worker;
    only ``columns`` of them when given (``fit`` keeps ``data.feed.TRAIN_COLUMNS``: less to move and format)."""
    steps = cfg.train.steps if steps is None else steps
    num_tasks = steps * cfg.data.tasks_per_step * cfg.scaling.num_workers
    ds = build_dataset(cfg, "train", num_tasks, first_task, plan, worker_cls, console)
    return ds.select_columns(list(columns)) if columns is not None else ds


def task_batches(
    source: DataIterator | ray.data.Dataset,
    k: int,
    device: torch.device | str = "cpu",
    depth: int = 2,
    *,
    start_now: bool = False,
) -> DeviceFeed:
    """A consumer's batches of k task rows: numpy views of the stream's Arrow blocks (Ray fetches the next block,
    one or more whole batches, ahead in its threads; :class:`KRowBatches` slices them), then tensors without a
    copy, the pixels on ``device``, ``depth`` batches ahead on CUDA (``data.feed.DeviceFeed``). ``start_now``:
    the stream starts now, not at the first ``next`` (``data.feed.EarlyStart``).

    One block ahead, not ``depth``: Ray's prefetch window holds back block i until block i + window has been
    made, so a deeper window only delays every batch (the first one most) and fetches nothing sooner."""
    blocks = source.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)
    numpy = KRowBatches(blocks, k)
    return DeviceFeed(EarlyStart(numpy) if start_now else numpy, device, depth)


class KRowBatches:
    """Batches of k rows (the last one may be shorter) cut from ``blocks`` in order, as numpy columns.

    Zero-copy where it can be: a block arrives as one chunk per actor call (``map_batches`` of k rows), so a
    batch is usually one chunk's rows and its arrays are views of the block. Only a batch that straddles two
    chunks or two blocks is copied, and only its own rows. Ray's ``iter_batches(batch_size=k)`` instead combines
    each block's chunks into one copy before slicing it: a copy of every byte in the consumer process.

    An iterable, as Ray's own ``iter_batches`` is: each ``iter`` is a new pass, and a consumer that stops early
    closes that pass (and Ray's iteration under it) when it drops it."""

    def __init__(self, blocks: Iterable[pa.Table], k: int) -> None:
        self.blocks, self.k = blocks, k

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        carry: pa.Table | None = None
        for block in self.blocks:
            table = block if carry is None else pa.concat_tables([carry, block])  # chunks appended, not copied
            start = 0
            while table.num_rows - start >= self.k:
                yield BlockAccessor.for_block(table.slice(start, self.k)).to_numpy()
                start += self.k
            carry = table.slice(start) if start < table.num_rows else None
        if carry is not None:
            yield BlockAccessor.for_block(carry).to_numpy()


class DataMeter:
    """Wraps a batch iterator and measures what its consumer sees, for logging as ``data/*`` metrics.

    Args:
        batches: batches with ``hr`` (k, n, …) and ``work_s`` (k,) (numpy arrays or tensors on any device); a
            :class:`~blindsr.data.feed.DeviceFeed` also reports its conversion cost (``data/consumer_ms``).
        actors: size of the degradation actor pool.
        consumers: how many train workers share the stream (each sees 1/consumers of the rows).
    """

    def __init__(self, batches: Iterable[Mapping[str, Any]], actors: int = 1, consumers: int = 1) -> None:
        self.batches, self.actors, self.consumers = batches, actors, consumers
        self.total_patches = 0
        self._reset(time.perf_counter())

    def _consumer_s(self) -> float:
        return float(getattr(self.batches, "consumer_s", 0.0))

    def _reset(self, now: float) -> None:
        self._since, self._patches, self._wait, self._work, self._count = now, 0, 0.0, 0.0, 0
        self._consumed_at_reset = self._consumer_s()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        asked = time.perf_counter()
        for batch in self.batches:
            self._wait += time.perf_counter() - asked
            k, n = batch["hr"].shape[:2]
            self._patches += k * n
            self._count += 1
            self.total_patches += k * n
            self._work = self._work + batch["work_s"].sum()  # stays on the batch's device until metrics()
            yield batch
            asked = time.perf_counter()

    def metrics(self, reset: bool = True) -> dict[str, float]:
        """Since the last reset: ``data/patches_per_s`` delivered, ``data/wait_frac`` of wall time spent waiting
        for a batch, ``data/actor_util`` ≈ busy share of the actor pool (row-making seconds / actor seconds),
        ``data/consumer_ms``: CPU ms of the training thread per batch turning it into device tensors."""
        now = time.perf_counter()
        elapsed = max(now - self._since, 1e-9)
        out = {
            "data/patches_per_s": self._patches / elapsed,
            "data/wait_frac": self._wait / elapsed,
            "data/actor_util": float(self._work) * self.consumers / (elapsed * self.actors),
            "data/consumer_ms": 1e3 * (self._consumer_s() - self._consumed_at_reset) / max(self._count, 1),
        }
        if reset:
            self._reset(now)
        return out
