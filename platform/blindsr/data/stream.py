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
  every run with the same seed (in-training validation reads whole images instead: ``blindsr.validation``).

Resource rule (ray-project/ray#44687: actors that take every CPU starve Ray Data's read tasks forever):
:func:`plan_resources` reserves the train workers' CPUs and :data:`READ_CPUS` for read tasks, and gives the
actors what is left: their configured CPUs if that fits, else an equal fractional share. A share below
:data:`MIN_ACTOR_CPUS`, or GPU fractions that do not fit, fail at once with the settings to change.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ray
import ray.data
import torch
from ray.data import DataIterator

from blindsr.config import Config, ScalingConfig
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import DeviceFeed
from blindsr.data.shards import is_shard_location, list_shards
from blindsr.data.sources import list_image_files

log = logging.getLogger(__name__)

READ_CPUS = 1.0  # kept free for Ray Data's read and bookkeeping tasks
MIN_ACTOR_CPUS = 0.25  # below this a degradation actor is too slow to be worth scheduling
MAX_READ_BLOCKS = 4096  # caps the read tasks of a long run
ROWS_PER_BLOCK = 64  # task ids per read block: a retried (killed) actor task re-makes at most this many rows


class DataPlanError(RuntimeError):
    """The degradation actors cannot fit next to the training workers; the message says what to change."""


@dataclass(frozen=True)
class DataPlan:
    """Resources of the degradation actor pool, derived from the cluster and the ScalingConfig."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    cluster_cpus: float
    train_cpus: float

    @property
    def free_cpus(self) -> float:
        """CPUs left for Ray Data's read tasks once training and the actors hold theirs (≥ READ_CPUS)."""
        return self.cluster_cpus - self.train_cpus - self.actors * self.cpus_per_actor

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_actor > 0 else "cpu"

    def describe(self) -> str:
        gpu = f", {self.gpus_per_actor:g} GPU" if self.gpus_per_actor else ""
        return (
            f"{self.actors} degradation actor(s) × {self.cpus_per_actor:g} CPU{gpu}; training {self.train_cpus:g} CPU; "
            f"{self.free_cpus:g} of {self.cluster_cpus:g} CPUs left for read tasks"
        )


def plan_resources(
    scaling: ScalingConfig, cluster: Mapping[str, float] | None = None, reserve_train: bool = True
) -> DataPlan:
    """Size the actor pool so that read tasks always keep READ_CPUS (no #44687 deadlock).

    Args:
        scaling: worker and actor counts and shares.
        cluster: ``{"CPU": …, "GPU": …}`` this run may use; default ``ray.cluster_resources()``. Concurrent Tune
            trials each build their own pool: pass each trial its share (less its driver's CPU), or they oversubscribe.
        reserve_train: hold back ``num_workers × cpus_per_worker`` CPUs (and their GPUs) for TorchTrainer.

    Raises:
        DataPlanError: the actors cannot get MIN_ACTOR_CPUS each, or their GPU fractions do not fit.
    """
    cluster = dict(ray.cluster_resources() if cluster is None else cluster)
    cpus, gpus = float(cluster.get("CPU", 0.0)), float(cluster.get("GPU", 0.0))
    actors = scaling.degrade_actors
    train_cpus = scaling.num_workers * scaling.cpus_per_worker if reserve_train else 0.0
    budget = cpus - train_cpus - READ_CPUS
    per_actor = scaling.degrade_cpus_per_actor
    if actors * per_actor > budget:
        per_actor = math.floor(100 * budget / actors) / 100  # an equal fractional share, rounded down
        if per_actor < MIN_ACTOR_CPUS:
            fits = max(0, math.floor(budget / MIN_ACTOR_CPUS))
            raise DataPlanError(
                f"the data plane does not fit: the cluster has {cpus:g} CPUs; training takes "
                f"{scaling.num_workers} × {scaling.cpus_per_worker:g} = {train_cpus:g}, Ray Data read tasks keep "
                f"{READ_CPUS:g}, which leaves {max(budget, 0):g} for {actors} degradation actor(s) (at least "
                f"{MIN_ACTOR_CPUS:g} each). Lower scaling.degrade_actors (at most {fits} fit), scaling.num_workers "
                f"or scaling.cpus_per_worker, or start Ray with more CPUs."
            )
        log.warning(
            "%d degradation actors × %g CPU do not fit next to training and read tasks; giving each %g CPU",
            actors,
            scaling.degrade_cpus_per_actor,
            per_actor,
        )
    gpu_share = scaling.degrade_gpu_fraction
    if gpu_share > 0:
        trains_on_gpu = reserve_train and (scaling.use_gpu or (scaling.use_gpu is None and gpus >= 1))
        train_gpus = scaling.num_workers if trains_on_gpu else 0
        if actors * gpu_share > gpus - train_gpus + 1e-9:
            raise DataPlanError(
                f"the degradation actors want {actors} × {gpu_share:g} GPU but the cluster has {gpus:g} GPUs, "
                f"{train_gpus} of them for training. Lower scaling.degrade_gpu_fraction or scaling.degrade_actors, "
                f"train on fewer GPUs (scaling.num_workers), or set scaling.degrade_gpu_fraction=0 to degrade on CPUs."
            )
    plan = DataPlan(actors, per_actor, gpu_share, cpus, train_cpus)
    log.info("data plan: %s", plan.describe())
    return plan


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


def preflight(source: str) -> None:
    """Fail on the driver, not in N actors, when a folder or shard location is missing or empty."""
    if source == "corpus":
        return
    if is_shard_location(source):
        list_shards(source)
    else:
        list_image_files(Path(source))


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
    plan = plan or plan_resources(cfg.scaling)
    batch = min(cfg.data.tasks_per_step, ROWS_PER_BLOCK)
    rows = max(batch, min(ROWS_PER_BLOCK, math.ceil(num_tasks / (2 * plan.actors))))  # ≥ 2 blocks per actor
    blocks = min(MAX_READ_BLOCKS, math.ceil(num_tasks / rows))
    ds = ray.data.range(num_tasks, override_num_blocks=blocks).map_batches(
        worker_cls,
        fn_constructor_kwargs={
            "data": cfg.data,
            "degradation": cfg.degradation,
            "scale": cfg.scale,
            "seed": cfg.seed,
            "stream": stream,
            "first_task": first_task,
            "device": plan.device,
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
    source: DataIterator | ray.data.Dataset, k: int, device: torch.device | str = "cpu", depth: int = 2
) -> DeviceFeed:
    """A consumer's batches of k task rows: numpy straight from Arrow (Ray formats ``depth`` batches ahead in
    its threads), then tensors without a copy, the pixels on ``device`` (``data.feed.DeviceFeed``)."""
    numpy = source.iter_batches(batch_size=k, batch_format="numpy", prefetch_batches=depth)
    return DeviceFeed(numpy, device, depth)


class DataMeter:
    """Wraps a batch iterator and measures what its consumer sees, for logging as ``data/*`` metrics.

    Args:
        batches: batches with ``lr`` (k, n, …) and ``work_s`` (k,) (numpy arrays or tensors on any device); a
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
            k, n = batch["lr"].shape[:2]
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
