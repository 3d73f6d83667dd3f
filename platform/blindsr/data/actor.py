"""``DegradeWorker``: the Ray Data ``map_batches`` callable that turns task ids into task rows.

It loads its HR pool once (folder, shards or corpus) and makes every row from its own generator,
``np.random.default_rng([run seed, stream, task id])``. A row is therefore a pure function of
(seed, stream, task id): whichever actor gets a batch, and however often a failed batch is retried, the
rows are the same, so validation streams and seeded runs reproduce exactly. (Seeding from a worker index
instead would tie the rows to Ray's scheduling.)

Two samplers (``DataConfig.sampler``):

* ``task`` (CMDSR): n patches of one image sharing one degradation, ``TaskSampler.sample_random``.
* ``pair`` (CDSR/DASR MoCo): patch 0 is the query, patches 1..n-1 its keys, as ``DataConfig.moco_positive``
  says: ``same`` (DASR/CDSR default) other crops of the query's image with the query's degradation (one
  flip/rotation for all crops, as DASR's ``augment`` does); ``other_image`` crops of another image with the
  same kernel and noise level (another noise realisation, so the pair cannot match on identical noise);
  ``other_degradation`` crops of the same image with a freshly drawn degradation. The keys' degradation is
  the row's ``key_*`` columns.

The class imports no Ray: it runs in-process as well (tests, benchmarks' in-process baseline).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from blindsr.config import DataConfig, DegradationConfig
from blindsr.console import Event, send
from blindsr.data.patches import Task, TaskSampler
from blindsr.data.schema import TaskRow, encode
from blindsr.data.sources import DatasetError, ImagePool, load_source
from blindsr.degradations.sampling import max_context, sample_spec
from blindsr.degradations.spec import DegradationSpec

log = logging.getLogger(__name__)

STREAMS: dict[str, int] = {"train": 0, "val": 1}  # the stream's entry in every task's seed


class DegradeWorker:
    """Makes task rows from task ids; one instance per Ray Data actor.

    Args:
        data: where HR images come from and how tasks are cut (``source``/``val_source``, patch size, n, sampler).
        degradation: the distribution each task's degradation is drawn from.
        scale: down-scaling factor s.
        seed: the run seed.
        stream: ``train`` (``data.source``, train split, augmentation as configured) or ``val``
            (``data.val_source``, val split, no augmentation).
        first_task: added to every incoming id (a resumed run starts its stream past the tasks it has seen).
        device: where the torch degradation runs: ``cpu`` or ``cuda`` (the GPU-fraction actors).
        console: the driver's progress channel (``blindsr.train.progress``): skipped images are named there.
        degrade_on: ``actor`` makes LR here; ``trainer`` leaves it to the train worker: rows carry HR windows with
            the distribution's largest context margin and the spec, no LR (:mod:`blindsr.data.on_trainer`).
    """

    def __init__(
        self,
        data: DataConfig,
        degradation: DegradationConfig,
        scale: int,
        seed: int,
        stream: Literal["train", "val"] = "train",
        first_task: int = 0,
        device: str = "cpu",
        console: Any = None,
        degrade_on: Literal["actor", "trainer"] = "actor",
    ) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
        if degrade_on not in ("actor", "trainer"):
            raise ValueError(f"unknown degrade_on {degrade_on!r}; valid: actor, trainer")
        self.window = max_context(degradation, scale) if degrade_on == "trainer" else 0
        self.data, self.degradation, self.scale = data, degradation, scale
        self.seed, self.stream_key, self.first_task = seed, STREAMS[stream], first_task
        source, split = (data.source, "train") if stream == "train" else (data.val_source, "val")
        hr_size = data.patch_size * scale
        self.pool: ImagePool = load_source(source, split, min_size=hr_size, recursive=data.recursive)
        log.info("DegradeWorker (%s): %s", stream, self.pool.summary())
        if self.pool.skipped:  # the user's console, which does not show actors' logs by default
            send(console, Event(0, {}, note=f"data ({stream}): {self.pool.summary()}"))
        pair = data.sampler == "pair"
        if pair and data.patches_per_task < 2:
            raise ValueError(f"a query/key pair task needs data.patches_per_task >= 2, got {data.patches_per_task}")
        if pair and data.moco_positive == "other_image" and len(self.pool) < 2:
            raise DatasetError(f"moco_positive='other_image' needs at least 2 images; {self.pool.summary()}")
        self.augment = data.augment and stream == "train"
        self.device = device
        self.sampler = TaskSampler(
            self.pool,
            data.patch_size,
            data.patches_per_task,
            scale,
            self.augment,
            same_augment=pair,
            device=device,
            window=self.window,
        )
        self._single: dict[tuple[int, int], TaskSampler] = {}

    def rng(self, task_id: int) -> np.random.Generator:
        """The generator of task ``task_id``: a function of (run seed, stream, task id) only."""
        return np.random.default_rng([self.seed, self.stream_key, task_id])

    def _from_image(self, index: int, n: int) -> TaskSampler:
        """A sampler of n patches restricted to pool image ``index`` (cached)."""
        key = (index, n)
        if key not in self._single:
            image = self.pool[index]
            self._single[key] = TaskSampler(
                ImagePool([image], origin=image.id),
                self.data.patch_size,
                n,
                self.scale,
                self.augment,
                same_augment=True,
                device=self.device,
                window=self.window,
            )
        return self._single[key]

    def _pair(self, rng: np.random.Generator) -> tuple[Task, DegradationSpec | None]:
        spec = sample_spec(rng, self.degradation, self.scale)
        mode = self.data.moco_positive
        if mode == "same":
            return self.sampler.sample(rng, spec), None
        q_index = int(rng.integers(len(self.pool)))
        query = self._from_image(q_index, 1).sample(rng, spec)
        if mode == "other_image":
            k_index = (q_index + 1 + int(rng.integers(len(self.pool) - 1))) % len(self.pool)
            key_spec = dataclasses.replace(spec, seed=int(rng.integers(0, 2**31 - 1)))
        else:  # other_degradation
            k_index, key_spec = q_index, sample_spec(rng, self.degradation, self.scale)
        keys = self._from_image(k_index, self.data.patches_per_task - 1).sample(rng, key_spec)
        task = Task(
            lr=None if query.lr is None else np.concatenate([query.lr, keys.lr]),
            hr=np.concatenate([query.hr, keys.hr]),
            spec=spec,
            image_id=query.image_id,
            window=query.window,
        )
        return task, key_spec

    def make(self, task_id: int) -> TaskRow:
        """The row of task ``task_id`` (lr (n, 3, h, w), hr (n, 3, s·h, s·w) uint8)."""
        start = time.perf_counter()
        rng = self.rng(task_id)
        if self.data.sampler == "pair":
            task, key_spec = self._pair(rng)
        else:
            task, key_spec = self.sampler.sample_random(rng, self.degradation), None
        return TaskRow(task_id, task, key_spec, work_s=time.perf_counter() - start)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """``{"id": (k,) int64}`` (a ``ray.data.range`` batch) → k task rows (``schema.task_schema``)."""
        return encode([self.make(self.first_task + int(i)) for i in batch["id"]])
