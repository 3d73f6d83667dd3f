"""The consumer side of the stream, in one object: a train worker's call rows → device batches of k tasks. No Ray.

:class:`Feed` takes the stream's blocks (call rows, ``schema.pack``) and yields tensors: views of the blocks
(no copy), the pixels on the device (CUDA: through pinned memory on a side stream, ``depth`` batches ahead),
degraded here first when the actors sent HR windows (``scaling.degrade_on: trainer``, ``data.on_trainer``), and
metered (:class:`FeedMetrics`). The pixels stay uint8 until the step converts them (``train.runner.to_float``).
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from blindsr.data.on_trainer import degrade_batch
from blindsr.data.schema import KEY_FIELDS, SPEC_FIELDS

TRAIN_COLUMNS = ("task_id", "work_s", "lr", "hr")  # all a train worker reads of a task row
# and of a row of HR windows, which it degrades itself (scaling.degrade_on: trainer)
WINDOW_COLUMNS = ("task_id", "work_s", "window", "hr", *SPEC_FIELDS, *(f"key_{name}" for name in KEY_FIELDS))
PIXELS = ("lr", "hr")  # what goes to the device; the rest stays on the host (bookkeeping)


def stream_columns(degrade_on: str) -> tuple[str, ...]:
    """The columns a train worker reads with ``scaling.degrade_on`` (the actors send no others)."""
    return WINDOW_COLUMNS if degrade_on == "trainer" else TRAIN_COLUMNS


Batch = dict[str, torch.Tensor]
_END = object()


def as_tensors(batch: Mapping[str, np.ndarray]) -> Batch:
    """Each column as a tensor sharing the array's memory (Ray's arrays are read-only; the step never writes
    into a batch, it makes float copies)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


def call_rows(block: pa.Table) -> Iterator[dict[str, np.ndarray]]:
    """The call rows of a block as numpy columns of its k tasks, each a view of the block's memory."""
    for row in range(block.num_rows):  # a row lies in one chunk: its columns convert without a copy
        one = block.slice(row, 1)
        yield {name: _numpy(one.column(name).chunk(0))[0] for name in one.column_names}


def _numpy(array: pa.Array) -> np.ndarray:
    return array.to_numpy_ndarray() if isinstance(array.type, pa.FixedShapeTensorType) else array.to_numpy()


@dataclass(frozen=True)
class FeedMetrics:
    """Since the last reset: patches/s delivered, the share of wall time spent waiting for a batch, actors' worth
    of row-making consumed and its share of the pool, the training thread's CPU ms per batch turning it into
    device tensors, and its wall ms per batch issuing the degradation (``degrade_on: trainer``, else 0)."""

    patches_per_s: float
    wait_frac: float
    actors_busy: float
    actor_util: float
    consumer_ms: float
    degrade_ms: float

    def logged(self) -> dict[str, float]:
        """As the run's metrics: ``data/<name>``."""
        return {f"data/{name}": value for name, value in asdict(self).items()}


class Feed:
    """A train worker's batches: ``{"task_id", "work_s", "lr", "hr"}`` tensors of k tasks, the pixels on ``device``.

    Args:
        blocks: the stream's blocks of call rows, in order (Ray's ``iter_batches(batch_size=None)``), or one
            numpy dict per batch.
        k: tasks per batch (``data.tasks_per_step``); a call row of another size is an error.
        device: where the pixels go. depth: batches copied ahead on CUDA (``data.prefetch_batches``).
        degrade_on: ``trainer``: the rows hold HR windows and their specs; the batch is degraded here first.
        actors, consumers: the pool's (largest) size and the train workers sharing the stream (for the metrics).
        start_now: ask for the first batch now, in a thread: the stream's start-up overlaps the caller's set-up.
    """

    def __init__(
        self,
        blocks: Iterable[pa.Table] | Iterable[Mapping[str, np.ndarray]],
        k: int,
        device: torch.device | str = "cpu",
        depth: int = 2,
        *,
        degrade_on: str = "actor",
        actors: int = 1,
        consumers: int = 1,
        start_now: bool = False,
    ) -> None:
        if depth < 1:
            raise ValueError(f"data.prefetch_batches must be >= 1, got {depth}")
        self.blocks, self.k, self.device, self.depth = blocks, k, torch.device(device), depth
        self.degrade_on, self.actors, self.consumers = degrade_on, actors, consumers
        self.total_patches = 0
        self._reset(time.perf_counter())
        self._first: Any = _END
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if start_now:
            self._source: Iterator[Mapping[str, np.ndarray]] | None = self._rows()
            self._thread = threading.Thread(target=self._pull, name="blindsr-first-batch", daemon=True)
            self._thread.start()
        else:
            self._source = None

    # ---- the batches ------------------------------------------------------------------------------------
    def _rows(self) -> Iterator[Mapping[str, np.ndarray]]:
        for block in self.blocks:
            for row in call_rows(block) if isinstance(block, pa.Table) else [block]:
                if len(row["task_id"]) != self.k:
                    raise ValueError(f"a call row holds {len(row['task_id'])} tasks, the consumer steps on {self.k}")
                yield row

    def _pull(self) -> None:
        try:
            self._first = next(self._source, _END)  # type: ignore[arg-type]
        except BaseException as e:  # re-raised in the consumer's thread
            self._error = e

    def _host(self) -> Iterator[Mapping[str, np.ndarray]]:
        if self._thread is None:
            yield from self._rows()
            return
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._first is not _END:
            first, self._first = self._first, _END  # not kept alive for the whole run
            yield first
        yield from self._source  # type: ignore[misc]

    def __iter__(self) -> Iterator[Batch]:
        asked = time.perf_counter()
        for batch in self._on_device(self._host()):
            self._wait += time.perf_counter() - asked
            if self.degrade_on == "trainer":
                start = time.perf_counter()
                batch = degrade_batch(batch)
                self._degrade += time.perf_counter() - start
            k, n = batch["hr"].shape[:2]
            self._patches, self._count = self._patches + k * n, self._count + 1
            self.total_patches += k * n
            self._work = self._work + batch["work_s"].sum()  # stays on the batch's device until metrics()
            yield batch
            asked = time.perf_counter()

    def _on_device(self, rows: Iterator[Mapping[str, np.ndarray]]) -> Iterator[Batch]:
        if self.device.type != "cuda":
            for row in rows:
                start = time.thread_time()
                out = as_tensors(row)
                self._consumer += time.thread_time() - start
                yield out
            return
        side = torch.cuda.Stream(self.device)
        pending: collections.deque[tuple[Batch, torch.cuda.Event]] = collections.deque()

        def issue() -> bool:
            row = next(rows, None)
            if row is None:
                return False
            start = time.thread_time()
            host = as_tensors(row)
            with torch.cuda.stream(side):
                for k in PIXELS:
                    if k in host:  # rows of HR windows have no lr (data.on_trainer)
                        host[k] = host[k].pin_memory().to(self.device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(side)
            pending.append((host, done))
            self._consumer += time.thread_time() - start
            return True

        while len(pending) < self.depth and issue():
            pass
        while pending:
            batch, done = pending.popleft()
            current = torch.cuda.current_stream(self.device)
            current.wait_event(done)
            for k in PIXELS:
                if k in batch:
                    batch[k].record_stream(current)  # the side stream's allocator must not reuse it too early
            issue()
            yield batch

    # ---- the meter --------------------------------------------------------------------------------------
    def _reset(self, now: float) -> None:
        self._since, self._patches, self._wait, self._work, self._count = now, 0, 0.0, 0.0, 0
        self._consumer, self._degrade = 0.0, 0.0

    def metrics(self, reset: bool = True) -> FeedMetrics:
        """What the consumer saw since the last reset (:class:`FeedMetrics`)."""
        now = time.perf_counter()
        elapsed, count = max(now - self._since, 1e-9), max(self._count, 1)
        busy = float(self._work) * self.consumers / elapsed
        out = FeedMetrics(
            patches_per_s=self._patches / elapsed,
            wait_frac=self._wait / elapsed,
            actors_busy=busy,
            actor_util=busy / self.actors,
            consumer_ms=1e3 * self._consumer / count,
            degrade_ms=1e3 * self._degrade / count,
        )
        if reset:
            self._reset(now)
        return out
