"""The consumer side of the stream: numpy task batches → uint8 tensors on the training device. No Ray.

A train worker reads only :data:`TRAIN_COLUMNS` of a row (the stream projects the rest away before they reach
it), as numpy arrays straight out of Arrow (zero-copy), and turns them into tensors without a copy
(``torch.from_numpy``). On CUDA the pixels go through pinned host memory and a side stream: the copy of the
next ``depth`` batches runs while the current step computes, and the step's stream waits on an event, not the
host. The pixels stay uint8 until the step converts them (``train.runner.to_float``): a quarter of float's bytes.
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import torch

TRAIN_COLUMNS = ("task_id", "work_s", "lr", "hr")  # all a train worker reads of a task row
PIXELS = ("lr", "hr")  # what goes to the device; the rest stays on the host (bookkeeping)

Batch = dict[str, torch.Tensor]
_END = object()


def as_tensors(batch: Mapping[str, np.ndarray]) -> Batch:
    """Each column as a tensor sharing the array's memory (Ray's arrays are read-only; the step never writes
    into a batch, it makes float copies)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


class DeviceFeed:
    """Iterate ``batches`` (numpy columns) as tensors, the pixel columns on ``device``, ``depth`` batches ahead.

    ``consumer_s`` accumulates the training thread's CPU seconds spent turning batches into device tensors
    (``DataMeter`` reports it per batch as ``data/consumer_ms``)."""

    def __init__(self, batches: Iterable[Mapping[str, np.ndarray]], device: torch.device | str, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"data.prefetch_batches must be >= 1, got {depth}")
        self.batches, self.device, self.depth = batches, torch.device(device), depth
        self.consumer_s = 0.0

    def __iter__(self) -> Iterator[Batch]:
        if self.device.type != "cuda":
            for batch in self.batches:
                start = time.thread_time()
                out = as_tensors(batch)
                self.consumer_s += time.thread_time() - start
                yield out
            return
        yield from self._cuda()

    def _cuda(self) -> Iterator[Batch]:
        side = torch.cuda.Stream(self.device)
        pending: collections.deque[tuple[Batch, torch.cuda.Event]] = collections.deque()
        source = iter(self.batches)

        def issue() -> bool:
            batch = next(source, None)
            if batch is None:
                return False
            start = time.thread_time()
            host = as_tensors(batch)
            with torch.cuda.stream(side):
                for k in PIXELS:
                    if k in host:  # rows of HR windows have no lr (data.on_trainer)
                        host[k] = host[k].pin_memory().to(self.device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(side)
            pending.append((host, done))
            self.consumer_s += time.thread_time() - start
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


class EarlyStart:
    """Iterate ``batches`` in order, the first one already asked for: a thread calls ``next`` once, at
    construction, so a stream's start-up overlaps the caller's own set-up.

    A train worker makes one before it builds its model, restores the checkpoint and opens its MLflow run:
    meanwhile Ray Data starts the split coordinator and the degradation actors (each a new process importing
    its modules) and degrades the first batch. An error in getting that batch is raised by iteration."""

    def __init__(self, batches: Iterable[Mapping[str, np.ndarray]]) -> None:
        self._source = iter(batches)
        self._first: object = _END
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pull, name="blindsr-first-batch", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        try:
            self._first = next(self._source, _END)
        except BaseException as e:  # re-raised in the consumer's thread
            self._error = e

    def __iter__(self) -> Iterator[Mapping[str, np.ndarray]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._first is not _END:
            first, self._first = self._first, _END  # not kept alive for the whole run
            yield first  # type: ignore[misc]
        yield from self._source
