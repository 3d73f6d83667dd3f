"""The Ray Data datasets that ``TorchTrainer(datasets=...)`` consumes: call rows made by DegradeWorker actors.

``CallSource → map_batches(DegradeWorker, ActorPoolStrategy)``: one row is one *call*, the k tasks of one train
worker's step (``schema.pack``), one block each, in order (``preserve_order``). The source yields call indices
lazily, a bounded lead ahead of the calls the actors have begun (a :class:`StreamCursor`), so a 64M-task stream
starts as fast as a 400-task one. A run's data is a function of its seed; a resumed run continues exactly
(``first_task``). The pool is sized by ``data.plan``; why and how: docs/data.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import ray
import ray.data
import torch
from ray.data import DataIterator
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from blindsr.config import Config
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import Feed
from blindsr.data.plan import DataPlan, plan_resources, preflight

log = logging.getLogger(__name__)

BLOCK_TASKS = 16  # tasks per read block (an actor task): a killed actor re-makes at most this many rows
TASKS_IN_FLIGHT = 4  # per actor; at Ray's 2 an actor idled 8% of the time between tasks (docs/performance.md)
SOURCE_CPUS = 0.1  # the source mostly waits; unlike any actor's share (>= 0.25), so Ray never fuses it into the actors
STALL_S = 60.0  # a source that hears nothing from the actors this long yields one call anyway (liveness)


@ray.remote(num_cpus=0, max_restarts=-1)
class StreamCursor:
    """The last call index an actor has begun; the source waits on it to stay a lead ahead."""

    def __init__(self) -> None:
        self.begun, self.issued = -1, 0
        self.changed = asyncio.Condition()

    async def state(self) -> tuple[int, int]:
        """(calls the source has issued, the last call an actor has begun)."""
        return self.issued, self.begun

    async def advance(self, call: int) -> None:
        if call > self.begun:
            self.begun = call
            async with self.changed:
                self.changed.notify_all()

    async def issue(self, calls: int) -> None:
        self.issued = max(self.issued, calls)

    async def wait_for(self, call: int, timeout_s: float) -> int:
        """The last begun call, once it is at least ``call`` or after ``timeout_s``."""
        try:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.begun >= call), timeout_s)
        except TimeoutError:
            pass
        return self.begun


class CallSource(Datasource):
    """Call indices ``0 … calls − 1`` in blocks of ``per_block``, from one lazily iterated read task that stays at
    most ``lead`` calls ahead of the cursor."""

    def __init__(self, calls: int, per_block: int, cursor: Any, lead: int) -> None:
        self.calls, self.per_block, self.cursor, self.lead = calls, per_block, cursor, lead

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # no size-based splitting of the one read task

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None):
        calls, per_block, cursor, lead = self.calls, self.per_block, self.cursor, self.lead

        def blocks() -> Iterator[pa.Table]:
            begun, waited = -1, 0.0
            for start in range(0, calls, per_block):
                while start - begun > lead and waited < STALL_S:
                    now = time.monotonic()
                    begun = max(begun, ray.get(cursor.wait_for.remote(start - lead // 2, 5.0)))
                    waited = waited + time.monotonic() - now if start - begun > lead else 0.0
                waited, end = 0.0, min(start + per_block, calls)
                if cursor is not None:
                    cursor.issue.remote(end)
                yield pa.table({"id": np.arange(start, end, dtype=np.int64)})

        meta = BlockMetadata(num_rows=calls, size_bytes=8 * calls, input_files=None, exec_stats=None)
        return [ReadTask(blocks, meta)]


def map_kwargs(plan: DataPlan) -> dict[str, Any]:
    """The ``map_batches`` resource arguments of the actor pool: ``plan.actors`` actors, or Ray Data's autoscaling
    pool between ``plan.actors`` and ``plan.max_actors`` (``scaling.degrade_actors: auto``).

    Fault tolerance is Ray Data's default for actor pools, ``max_restarts=-1, max_task_retries=-1``: a crashed
    actor is restarted and its calls re-run, which gives the same rows (they are deterministic).
    """
    queue = {"max_tasks_in_flight_per_actor": TASKS_IN_FLIGHT}
    if plan.max_actors > plan.actors:
        compute = ray.data.ActorPoolStrategy(min_size=plan.actors, max_size=plan.max_actors, **queue)
    else:
        compute = ray.data.ActorPoolStrategy(size=plan.actors, **queue)
    kwargs: dict[str, Any] = {"compute": compute, "num_cpus": plan.cpus_per_actor}
    if plan.gpus_per_actor > 0:
        kwargs["num_gpus"] = plan.gpus_per_actor
    return kwargs


def build_dataset(
    cfg: Config,
    stream: Literal["train", "val"],
    num_tasks: int,
    first_task: int = 0,
    plan: DataPlan | None = None,
    worker_cls: type[DegradeWorker] = DegradeWorker,
    console: Any = None,
    tasks_per_row: int = 1,
    cursor: Any = None,
    columns: Sequence[str] | None = None,
) -> ray.data.Dataset:
    """``num_tasks`` tasks (ids ``first_task …``, in order) as call rows of ``tasks_per_row`` tasks, made by a pool
    of ``worker_cls`` actors. Returns a lazy dataset of ``num_tasks / tasks_per_row`` rows (``schema.pack``).
    ``cursor``: the :class:`StreamCursor` to pace the source with (default: a new one); ``columns``: those of the
    rows (the actors drop the rest: a projection after them would copy every row once more)."""
    if num_tasks < 1 or num_tasks % tasks_per_row:
        raise ValueError(f"num_tasks must be a positive multiple of {tasks_per_row}, got {num_tasks}")
    preflight(cfg.data.source if stream == "train" else cfg.data.val_source)
    plan = plan or plan_resources(cfg.scaling, ray.cluster_resources())
    per_block = max(1, BLOCK_TASKS // tasks_per_row)
    cursor = cursor or StreamCursor.remote()
    lead = TASKS_IN_FLIGHT * per_block * (plan.max_actors + 1)  # every actor's queue full, and one more
    source = CallSource(num_tasks // tasks_per_row, per_block, cursor, lead=lead)
    ds = ray.data.read_datasource(source, override_num_blocks=1, num_cpus=SOURCE_CPUS)
    ds = ds.map_batches(
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
            "tasks_per_row": tasks_per_row,
            "cursor": cursor,
            "columns": columns,
            **({"console": console} if console is not None else {}),  # a progress channel (train.progress)
        },
        batch_size=None,
        batch_format="numpy",
        **map_kwargs(plan),
    )
    ds.context.execution_options.preserve_order = True
    ds.context.target_max_block_size = 1  # every block is emitted as made: a call row, or a block of call ids
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
    """Call rows for ``steps`` (default ``cfg.train.steps``) steps of ``data.tasks_per_step`` tasks per train worker;
    only ``columns`` of them when given (``fit`` keeps ``data.feed.TRAIN_COLUMNS``: less to move and format)."""
    steps = cfg.train.steps if steps is None else steps
    k = cfg.data.tasks_per_step
    n = steps * k * cfg.scaling.num_workers
    return build_dataset(cfg, "train", n, first_task, plan, worker_cls, console, k, columns=columns)


def task_batches(
    source: DataIterator | ray.data.Dataset,
    k: int,
    device: torch.device | str = "cpu",
    depth: int = 2,
    **feed: Any,
) -> Feed:
    """A consumer's batches of k tasks (:class:`~blindsr.data.feed.Feed`, ``feed`` its keywords) from the stream's
    whole blocks, each a call row; Ray fetches the next block ahead in its threads."""
    blocks = source.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)
    return Feed(blocks, k, device, depth, **feed)
