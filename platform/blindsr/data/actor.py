"""``DegradeWorker``: the Ray Data ``map_batches`` callable that turns call indices into call rows of tasks.

It maps its node's HR pool (``data.pool``) and makes every task from its own generator,
``np.random.default_rng([run seed, stream, task id])``, drawing its image from the task's window (``data.windows``),
so a row is a pure function of (seed, stream, task id) whichever actor makes it. Samplers (``data.sampler``):
``task`` (CMDSR: n patches of one image, one degradation) and ``pair`` (CDSR/DASR: a query and its keys, as
``data.moco_positive`` says; the keys' degradation is the row's ``key_*`` columns). No Ray: it runs in-process too.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import cv2
import numpy as np
import pyarrow as pa

from blindsr.config import DataConfig, DegradationConfig
from blindsr.console import Event, send
from blindsr.data.images import DatasetError, ImagePool
from blindsr.data.patches import Pixels, Task, TaskSampler
from blindsr.data.pool import node_pool
from blindsr.data.schema import TaskRow, encode, pack
from blindsr.data.windows import PoolWindows
from blindsr.degradations.sampling import max_context, sample_spec
from blindsr.degradations.spec import DegradationSpec

log = logging.getLogger(__name__)

STREAMS: dict[str, int] = {"train": 0, "val": 1}  # the stream's entry in every task's seed
SPARE_ROWS = 3  # call-row buffers kept for reuse


def _refs(pixels: Pixels) -> list[int]:
    return [sys.getrefcount(b) for b in pixels if b is not None]


FREE_REFS = _refs((np.empty(0),))[0]  # a buffer that only its Pixels tuple holds, counted as _call_pixels counts


def _part(out: Pixels | None, index: int | slice) -> Pixels | None:
    return None if out is None else (None if out[0] is None else out[0][index], out[1][index])


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
        tasks_per_row: tasks of one call row (``__call__``): a train worker's step, or 1.
        cursor: the stream's :class:`~blindsr.data.stream.StreamCursor`, told each call begun.
        columns: the columns of the call rows (default all): what the consumer reads, and no more.
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
        tasks_per_row: int = 1,
        cursor: Any = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
        if degrade_on not in ("actor", "trainer"):
            raise ValueError(f"unknown degrade_on {degrade_on!r}; valid: actor, trainer")
        if (threads := os.environ.get("OMP_NUM_THREADS", "")).isdigit() and int(threads) > 0:
            cv2.setNumThreads(int(threads))  # Ray sets it to an actor's CPUs; OpenCV's pthreads pool ignores it
        self.window = max_context(degradation, scale) if degrade_on == "trainer" else 0
        self.data, self.degradation, self.scale = data, degradation, scale
        self.seed, self.stream_key, self.first_task = seed, STREAMS[stream], first_task
        self.tasks_per_row, self.cursor, self.columns = tasks_per_row, cursor, columns
        source, split = (data.source, "train") if stream == "train" else (data.val_source, "val")
        hr_size = data.patch_size * scale
        self.node = node_pool(source, split, min_size=hr_size, recursive=data.recursive, cache_dir=data.cache_dir)
        self.pool: ImagePool = self.node.pool
        self.windows = PoolWindows.plan(len(self.pool), self.node.raw_bytes, data.pool_memory_gb, seed, self.stream_key)
        self._window: tuple[int, ImagePool] = (0 if self.windows.resident else -1, self.pool)
        log.info("DegradeWorker (%s): %s", stream, self.pool.summary())
        if self.pool.skipped:  # the user's console, which does not show actors' logs by default
            send(console, Event(0, {}, note=f"data ({stream}): {self.pool.summary()}"))
        pair = data.sampler == "pair"
        if pair and data.patches_per_task < 2:
            raise ValueError(f"a query/key pair task needs data.patches_per_task >= 2, got {data.patches_per_task}")
        if pair and data.moco_positive == "other_image" and min(len(self.pool), self.windows.per_window) < 2:
            raise DatasetError(
                f"moco_positive='other_image' needs at least 2 images (resident together); {self.pool.summary()}"
            )
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
        self._single: dict[tuple[str, int], TaskSampler] = {}
        self._spares: list[Pixels] = []  # call rows' buffers: a new one's page faults cost a quarter of its CPU here

    def rng(self, task_id: int) -> np.random.Generator:
        """The generator of task ``task_id``: a function of (run seed, stream, task id) only."""
        return np.random.default_rng([self.seed, self.stream_key, task_id])

    def images_of(self, task_id: int) -> ImagePool:
        """The images task ``task_id`` draws from: the pool, or its window of the pool. Entering a window asks the
        kernel to read the next one ahead and to drop this process's pages of the one before."""
        window = self.windows.window_of(task_id)
        if window != self._window[0]:
            members = self.windows.members(window)
            self.node.advise(self.windows.members(window + 1), mmap.MADV_WILLNEED)
            if window > 0:
                keep = set(members) | set(self.windows.members(window + 1))
                self.node.advise([i for i in self.windows.members(window - 1) if i not in keep], mmap.MADV_DONTNEED)
            images = ImagePool([self.pool[int(i)] for i in members], origin=f"{self.pool.origin} (window {window})")
            self._window = (window, images)
        return self._window[1]

    def _from_image(self, pool: ImagePool, index: int, n: int) -> TaskSampler:
        """A sampler of n patches restricted to image ``index`` of ``pool`` (cached by image)."""
        image = pool[index]
        key = (image.id, n)
        if key not in self._single:
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

    def _pair(
        self, rng: np.random.Generator, pool: ImagePool, out: Pixels | None
    ) -> tuple[Task, DegradationSpec | None]:
        spec = sample_spec(rng, self.degradation, self.scale)
        mode = self.data.moco_positive
        if mode == "same":
            return self.sampler.sample(rng, spec, pool, out), None
        q_index = int(rng.integers(len(pool)))
        query = self._from_image(pool, q_index, 1).sample(rng, spec, out=_part(out, slice(0, 1)))
        if mode == "other_image":
            k_index = (q_index + 1 + int(rng.integers(len(pool) - 1))) % len(pool)
            key_spec = dataclasses.replace(spec, seed=int(rng.integers(0, 2**31 - 1)))
        else:  # other_degradation
            k_index, key_spec = q_index, sample_spec(rng, self.degradation, self.scale)
        keys = self._from_image(pool, k_index, self.data.patches_per_task - 1).sample(
            rng, key_spec, out=_part(out, slice(1, None))
        )
        lr, hr = out or (
            None if query.lr is None else np.concatenate([query.lr, keys.lr]),
            np.concatenate([query.hr, keys.hr]),
        )
        return Task(lr=lr, hr=hr, spec=spec, image_id=query.image_id, window=query.window), key_spec

    def make(self, task_id: int, out: Pixels | None = None) -> TaskRow:
        """The row of task ``task_id`` (lr (n, 3, h, w), hr (n, 3, s·h, s·w) uint8), its pixels written into
        ``out`` (lr, or None with HR windows; hr) when given."""
        start = time.perf_counter()
        rng, pool = self.rng(task_id), self.images_of(task_id)
        if self.data.sampler == "pair":
            task, key_spec = self._pair(rng, pool, out)
        else:
            task, key_spec = self.sampler.sample_random(rng, self.degradation, pool, out), None
        return TaskRow(task_id, task, key_spec, work_s=time.perf_counter() - start)

    def _call_pixels(self) -> Pixels:
        """(k, n, 3, h, w) lr (None with HR windows) and (k, n, 3, H, W) hr buffers for one call row: a previous
        call's that nothing else references any more (its row is in the object store), else new ones."""
        for pixels in self._spares:
            if all(refs == FREE_REFS for refs in _refs(pixels)):
                return pixels
        k, n, p, side = self.tasks_per_row, self.data.patches_per_task, self.data.patch_size, self.sampler.hr_size
        lr = None if self.window else np.empty((k, n, 3, p, p), np.uint8)
        pixels = (lr, np.empty((k, n, 3, side + 2 * self.window, side + 2 * self.window), np.uint8))
        self._spares = [*self._spares[1 - SPARE_ROWS :], pixels]
        return pixels

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
        """``{"id": (b,) int64}`` call indices (:class:`~blindsr.data.stream.CallSource`) → b call rows, one at a
        time: call c holds tasks ``first_task + c·tasks_per_row …`` (``schema.pack``)."""
        for call in batch["id"]:
            first = self.first_task + int(call) * self.tasks_per_row
            if self.cursor is not None:
                self.cursor.advance.remote(int(call))
            lr, hr = self._call_pixels()  # each task writes its pixels into its slot: encode copies none
            rows = [self.make(first + i, out=_part((lr, hr), i)) for i in range(self.tasks_per_row)]
            table = encode(rows, pixels=(lr, hr))
            yield pack(table if self.columns is None else table.select(list(self.columns)))
