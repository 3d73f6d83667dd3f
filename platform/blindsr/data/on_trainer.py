"""Degradation on the train worker (``scaling.degrade_on: trainer``). No Ray.

With this placement the ``DegradeWorker`` actors still read images, cut each task's crops and draw its spec,
but they do not degrade: a row carries the task's HR windows, ``window`` px of context on each side (the
distribution's largest ``spec.context()``, :func:`~blindsr.degradations.sampling.max_context`), and the spec
columns. The train worker degrades the step's k tasks together on its own device
(:func:`~blindsr.degradations.batched.degrade_many`) and hands the step the batch the actor placement would
have delivered: the same pixels on the CPU (tested), within one grey level on CUDA.

When to choose it: when a node has too few CPU cores per GPU to keep the GPU fed (the GPU spends a few ms per
step degrading instead of waiting for rows). With cores to spare, ``actor`` keeps that time off the GPU and
moves fewer bytes (LR + HR rather than wider HR windows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from blindsr.data.feed import TRAIN_COLUMNS
from blindsr.data.schema import KEY_FIELDS, SPEC_FIELDS, decode_specs
from blindsr.degradations.batched import Unit, degrade_many

# all a train worker reads of a row of HR windows (the stream projects the rest away)
WINDOW_COLUMNS: tuple[str, ...] = (
    "task_id",
    "work_s",
    "window",
    "hr",
    *SPEC_FIELDS,
    *(f"key_{name}" for name in KEY_FIELDS),
)

Batch = dict[str, torch.Tensor]


def stream_columns(degrade_on: str) -> tuple[str, ...]:
    """The columns a train worker reads with ``scaling.degrade_on`` (the stream projects the rest away)."""
    return WINDOW_COLUMNS if degrade_on == "trainer" else TRAIN_COLUMNS


def training_batches(batches: Any, degrade_on: str) -> Any:
    """``batches`` (a ``DataMeter``) as the step takes them: degraded here first with ``degrade_on: trainer``.
    Either way the result's ``metrics()`` gives the ``data/*`` figures."""
    return TrainerDegradation(batches) if degrade_on == "trainer" else batches


def degrade_batch(batch: Mapping[str, Any]) -> Batch:
    """A batch of window rows → the training batch the actor placement delivers.

    Args:
        batch: ``hr`` (k, n, 3, P + 2M, P + 2M) uint8 windows on the training device, ``window`` (k,) = M, the
            spec columns (``key_*``: the degradation of crops 1..n−1 of a CDSR query/key row), ``task_id`` and
            ``work_s`` (k,).

    Returns:
        ``{"task_id", "work_s", "lr": (k, n, 3, P/s, P/s) uint8, "hr": (k, n, 3, P, P) uint8}``, on hr's device.
    """
    windows = batch["hr"]
    margins = {int(v) for v in batch["window"]}
    if len(margins) != 1:
        raise ValueError(f"a batch of HR windows must share one context margin, got {sorted(margins)}")
    big = margins.pop()
    side_h, side_w = windows.shape[-2:]
    specs, keys = decode_specs(batch), decode_specs(batch, "key_")
    units: list[Unit] = []
    counts = []  # units per task: 1, or 2 for a query/key row whose keys have their own degradation
    for i, (spec, key) in enumerate(zip(specs, keys, strict=True)):
        parts = [(slice(None), spec)] if key == spec else [(slice(0, 1), spec), (slice(1, None), key)]
        counts.append(len(parts))
        for crops, s in parts:
            m = s.context()
            if m > big:
                raise ValueError(f"task {int(batch['task_id'][i])}: {s} needs {m} px of context, the row has {big}")
            cut = big - m  # the centred (P + 2m)² window the actor would have degraded
            units.append(Unit(windows[i, crops, :, cut : side_h - cut, cut : side_w - cut], s, m))
    lrs = iter(degrade_many(units))
    lr = torch.stack([torch.cat([next(lrs) for _ in range(count)]) for count in counts])
    hr = windows[..., big : side_h - big, big : side_w - big]
    return {"task_id": batch["task_id"], "work_s": batch["work_s"], "lr": lr, "hr": hr}


class TrainerDegradation:
    """Iterate ``batches`` of window rows as degraded training batches; ``metrics()`` gives the inner iterator's
    (a ``DataMeter``'s) and ``data/degrade_ms``, the training thread's wall ms per batch spent issuing the
    degradation (on CUDA the kernels run asynchronously)."""

    def __init__(self, batches: Iterable[Mapping[str, Any]]) -> None:
        self.batches = batches
        self._spent, self._count = 0.0, 0

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.batches:
            start = time.perf_counter()
            out = degrade_batch(batch)
            self._spent += time.perf_counter() - start
            self._count += 1
            yield out

    def metrics(self, reset: bool = True) -> dict[str, float]:
        inner = getattr(self.batches, "metrics", None)
        out = {**(inner(reset) if inner else {}), "data/degrade_ms": 1e3 * self._spent / max(self._count, 1)}
        if reset:
            self._spent, self._count = 0.0, 0
        return out
