"""Degradation on the train worker (``scaling.degrade_on: trainer``). No Ray.

The actors send each task's HR windows (the distribution's largest context margin on each side) and its spec;
:func:`degrade_batch` degrades a step's k tasks together on the worker's device (``degradations.batched``) into
the batch the actor placement would have delivered: the same pixels on the CPU (tested), within one grey level on
CUDA. When to choose it: docs/training.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from blindsr.data.schema import decode_specs
from blindsr.degradations.batched import Unit, degrade_many


def degrade_batch(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
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
