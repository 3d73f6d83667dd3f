"""Deterministic fault injection for the reliability tests, and the CPU hog they must pass beside.

Every fault is reached at a point the test chooses, never by racing a timer: loop hooks act after a given
step (SIGKILL this very train worker, raise, or pause at a :class:`Gate` until the test opens it), and
:func:`kill_once_worker` makes a degradation actor SIGKILL itself while it makes its first batch, so the
stream cannot have finished first. The only timeouts here are failure guards (a hang fails the test).

``CpuHog`` keeps every core busy beside a test run (``pytest --cpu-hog``, see conftest.py).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import ray.cloudpickle

from blindsr.config import Config, flatten
from blindsr.data.actor import DegradeWorker
from blindsr.train.runner import LoopHook

# Hooks and worker classes travel to Ray workers, which cannot import this tests/ module: send it by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

GUARD_S = 600.0  # a failure guard, not a schedule: only a hang takes this long


class Gate:
    """A cross-process rendezvous in a folder: one side ``pause()``s (says it arrived, waits to be let
    through), the other ``wait_arrived()`` then ``open()``."""

    def __init__(self, folder: str | Path, name: str) -> None:
        self.arrived_file, self.open_file = Path(folder) / f"{name}.arrived", Path(folder) / f"{name}.open"

    def pause(self) -> None:
        self.arrived_file.touch()
        _poll(self.open_file.exists, f"{self.open_file} (opened by the test)")

    def wait_arrived(self) -> None:
        _poll(self.arrived_file.exists, f"{self.arrived_file} (the job reaching its gate)")

    def open(self) -> None:
        self.open_file.touch()


def _poll(condition, what: str, guard: float = GUARD_S) -> None:
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {guard:.0f} s for {what}")
        time.sleep(0.05)


def _matches(cfg: Config, when: Mapping[str, Any]) -> bool:
    """Whether the flattened ``cfg`` holds every ``key: value`` of ``when`` (a hook's target run)."""
    flat = flatten(cfg)
    return all(flat.get(k) == v for k, v in when.items())


def _once(marker: Path) -> bool:
    """True for the first caller across all processes (atomic create of ``marker``)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(time.time()).encode())
    os.close(fd)
    return True


# ---- training-loop hooks ------------------------------------------------------------------------------


class RecordTaskIds(LoopHook):
    """Appends ``{"start", "rank", "step", "ids"}`` per step to a JSON-lines file (one per rank)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder, self.start = Path(folder), 0

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        self.start = start

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        ids = [int(i) for i in np.asarray(batch["task_id"])]
        with open(self.folder / f"task_ids.rank{rank}.jsonl", "a") as f:
            f.write(json.dumps({"start": self.start, "rank": rank, "step": step, "ids": ids}) + "\n")

    def read(self, rank: int = 0) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.folder / f"task_ids.rank{rank}.jsonl").read_text().splitlines()]


class KillAt(LoopHook):
    """SIGKILL the rank-0 train worker's own process right after step ``step``, once per ``marker``."""

    def __init__(self, step: int, marker: str | Path) -> None:
        self.step, self.marker = step, Path(marker)

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        if step == self.step and rank == 0 and _once(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)

    def killed_at(self) -> float:
        """Wall time of the kill (seconds)."""
        return float(self.marker.read_text())


class RaiseAt(LoopHook):
    """Raise on every rank at step ``step`` of a fresh attempt of a run whose flattened config contains
    ``when`` (a crash in the training code; a resumed attempt passes)."""

    def __init__(self, step: int, when: Mapping[str, Any] | None = None, error: type[Exception] = RuntimeError) -> None:
        self.step, self.when, self.armed, self.error = step, dict(when or {}), False, error

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        self.armed = start == 0 and _matches(cfg, self.when)

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        if self.armed and step == self.step:
            raise self.error(f"injected failure at step {step}")


class TruncateNewestAndRaise(LoopHook):
    """At step ``step`` of a fresh attempt: rank 0 cuts the newest checkpoint of the run in ``run_dir`` to half
    (a worker that died while writing it), then every rank raises (the others only once it is cut)."""

    def __init__(self, step: int, run_dir: str | Path) -> None:
        self.step, self.run_dir, self.armed = step, Path(run_dir), False

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        self.armed = start == 0

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        if not (self.armed and step == self.step):
            return
        done = self.run_dir / "truncated"
        if rank == 0:
            newest = max(self.run_dir.glob("checkpoint_*/state.json"), key=lambda p: json.loads(p.read_text())["step"])
            model = newest.parent / "model.safetensors"
            model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
            done.write_text(str(newest.parent))
        _poll(done.exists, f"{done} (rank 0 cutting the newest checkpoint)")
        raise RuntimeError(f"injected failure at step {step} after cutting {done.read_text()}/model.safetensors")


class PauseAt(LoopHook):
    """Rank 0 stops after step ``step`` at ``gate`` until the test opens it; with ``when``, only in a run whose
    flattened config contains it."""

    def __init__(self, step: int, gate: Gate, when: Mapping[str, Any] | None = None) -> None:
        self.step, self.gate, self.when, self.armed = step, gate, dict(when or {}), True

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        self.armed = _matches(cfg, self.when)

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        if self.armed and step == self.step and rank == 0:
            self.gate.pause()


class Barrier(LoopHook):
    """Every run holds after step ``step`` until ``parties`` runs have got there (proves they overlap)."""

    def __init__(self, folder: str | Path, parties: int, step: int = 1) -> None:
        self.folder, self.parties, self.step = Path(folder), parties, step
        self.name = ""

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        self.name = cfg.name

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        if step == self.step and rank == 0:
            (self.folder / f"{self.name}.at_barrier").touch()
            _poll(lambda: len(list(self.folder.glob("*.at_barrier"))) >= self.parties, f"{self.parties} runs")


# ---- degradation actors -------------------------------------------------------------------------------


def kill_once_worker(marker: str | Path) -> type[DegradeWorker]:
    """A DegradeWorker whose first batch, across all its actors and restarts, SIGKILLs its own process before
    returning any row: the stream is still running (that batch is unfinished) when the actor dies."""

    class KillOnceDegradeWorker(DegradeWorker):
        def __call__(self, batch: dict[str, np.ndarray]):
            rows = super().__call__(batch)
            if _once(Path(marker)):
                os.kill(os.getpid(), signal.SIGKILL)
            return rows

    return KillOnceDegradeWorker


# ---- the CPU hog --------------------------------------------------------------------------------------


def _spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


RAY_WORKER_NICENESS = 15  # Ray starts every worker process (tasks, actors, train workers) at this niceness


def _spin_at(niceness: int) -> None:
    os.nice(niceness)
    _spin()


class CpuHog:
    """One busy process per core (``processes``, default ``os.cpu_count()``) for the life of the context.

    They spin at Ray's worker niceness, so each core is shared evenly between the hog and the Ray workers
    beside it (the tests see about half a core each), while Ray's own daemons (GCS, raylet; niceness 0) keep
    their priority as Ray intends. A hog at niceness 0 would leave the niceness-15 workers about 3 % of a core:
    that starves them rather than makes the machine busy."""

    def __init__(self, processes: int | None = None, niceness: int = RAY_WORKER_NICENESS) -> None:
        self.n = processes or os.cpu_count() or 1
        self.niceness = niceness
        self.procs: list[mp.Process] = []

    def __enter__(self) -> CpuHog:
        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_spin_at, args=(self.niceness,), daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.join()
