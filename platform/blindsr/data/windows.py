"""Which pool images a task may draw from: all of them, or a window when the pool exceeds ``data.pool_memory_gb``.

A window is ``per_window`` images resident together; it serves ``per_window × TASKS_PER_IMAGE`` consecutive task
ids. Each epoch is a seeded permutation of the pool cut into windows, so every image gets its turn once per
epoch. A task's window is a pure function of (run seed, stream, task id), like the rest of its row, so rows do
not depend on which actor makes them and a resumed run continues exactly. A pool that fits is one window that
never changes: its rows are those of the unbounded pool. No Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TASKS_PER_IMAGE = 32  # tasks drawn per resident image before its window moves on
_WINDOW_KEY = 7  # keeps the epochs' permutation seeds apart from the task seeds [seed, stream, task id]


@dataclass(frozen=True)
class PoolWindows:
    """The window schedule of a pool of ``images`` images (``per_window == images``: the whole pool, always)."""

    images: int
    per_window: int
    seed: int = 0
    stream: int = 0

    @classmethod
    def plan(cls, images: int, raw_bytes: int, budget_gb: float | None, seed: int = 0, stream: int = 0) -> PoolWindows:
        """Windows of as many images as two windows' bytes fit in ``budget_gb`` (the current one and the next, read
        ahead); the whole pool when it fits or there is no budget."""
        if budget_gb is None or raw_bytes <= budget_gb * 2**30:
            return cls(images, images, seed, stream)
        per_image = raw_bytes / images
        return cls(images, max(1, math.floor(budget_gb * 2**30 / 2 / per_image)), seed, stream)

    @property
    def resident(self) -> bool:
        return self.per_window >= self.images

    @property
    def tasks_per_window(self) -> int:
        return self.per_window * TASKS_PER_IMAGE

    def window_of(self, task_id: int) -> int:
        return 0 if self.resident else task_id // self.tasks_per_window

    def members(self, window: int) -> np.ndarray:
        """The sorted pool indices of ``window`` (every index when the pool is resident)."""
        return _members(self, window)


@lru_cache(maxsize=8)
def _members(w: PoolWindows, window: int) -> np.ndarray:
    if w.resident:
        return np.arange(w.images)
    per_epoch = math.ceil(w.images / w.per_window)
    epoch, j = divmod(window, per_epoch)
    order = np.random.default_rng([w.seed, w.stream, _WINDOW_KEY, epoch]).permutation(w.images)
    chosen = np.sort(order[j * w.per_window : (j + 1) * w.per_window])
    chosen.flags.writeable = False
    return chosen
