"""Data-plane throughput: the Ray Data stream of task rows against in-process and in-memory baselines.

    python benchmarks/stream.py [--tasks 960] [--steps 210] [--segment 10]

Workload: CMDSR tasks of n = 8 patches, LR 24² at ×4 (HR 96²), the CMDSR training distribution, k = 4 tasks per
batch, the built-in corpus; every actor and the consumer use one thread. Each section has its baseline in this run:

(a) patches/s through Ray Data (1 actor) vs the same DegradeWorker called in-process, both timed from their first
    batch (the stream's start-up, mostly the actor's torch import, is printed apart).
(b) the stream with 2 actors vs 1 (runs alternated 1, 2, 1, 2; the better of each kind). Goal: ≥ 1.7×.
(c) steps/s of a small ×4 SR loop (6 convs) fed by the stream as a train worker reads it (training columns,
    ``streaming_split``, ``task_batches``) vs the same batches replayed from memory. One run alternates segments
    of ``--segment`` steps, streamed/memory then memory/streamed, so both kinds share this machine's drift (±10 %
    between runs seconds apart); printed: the median of an odd number of segment pairs' ratios, the quartiles,
    the ratio of the totals and the consumer's CPU per step streamed minus in memory. Goal: ≥ 0.95×.
(d) the consumer alone: rows already made (materialised), read as in (c) with no step: the consumer's CPU per
    batch and per MB, median of 3 passes. Baseline: the same batches from a list (≈ 0). Goal: ≤ 3 ms per MB.
(e) what (c)'s alternation shares between its segments: the in-memory loop beside a DegradeWorker making rows flat
    out in its own process vs alone (SIGSTOPped), segments alternated as in (c); with (c)'s actor busy share, the
    cost of an actor that keeps pace.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from blindsr.config import Config, build_config  # noqa: E402
from blindsr.data.actor import DegradeWorker  # noqa: E402
from blindsr.data.feed import TRAIN_COLUMNS  # noqa: E402
from blindsr.data.plan import DataPlan, plan_resources  # noqa: E402
from blindsr.data.stream import build_dataset, task_batches, train_dataset  # noqa: E402

K, N, PATCH, SCALE = 4, 8, 24, 4
Batch = dict[str, torch.Tensor]


def workload(actors: int) -> Config:
    cfg = build_config(
        "cmdsr_paper",
        overrides=[f"data.patch_size={PATCH}", f"data.patches_per_task={N}", f"data.tasks_per_step={K}",
                   f"model.support_size={N // 2}"],  # CMDSR's 2n patches a task
    )  # fmt: skip
    cfg.scaling.degrade_actors = actors
    return cfg


@dataclass
class Spread:
    """Per-pair ratios of alternated segments: their median and quartiles (``statistics``)."""

    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def __str__(self) -> str:
        q1, _, q3 = statistics.quantiles(self.ratios, n=4) if len(self.ratios) > 1 else [self.ratios[0]] * 3
        return f"median of {len(self.ratios)} alternated pairs; quartiles {q1:.2f}-{q3:.2f}"


# (a), (b): patches/s of the stream against the worker in-process


def in_process(tasks: int) -> float:
    """Patches/s of a fresh DegradeWorker called directly, from its second batch on (as the stream is timed)."""
    cfg = workload(1)
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    list(worker({"id": np.arange(K)}))
    start = time.perf_counter()
    for first in range(K, tasks, K):
        list(worker({"id": np.arange(first, first + K)}))
    return (tasks - K) * N / (time.perf_counter() - start)


def streamed(actors: int, tasks: int) -> tuple[float, float]:
    """(start-up s to the first batch, patches/s from the first batch to the last) with ``actors`` actors."""
    cfg = workload(actors)
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    ds = build_dataset(cfg, "train", tasks, plan=plan)
    start = time.perf_counter()
    first_at, patches = 0.0, 0
    for i, batch in enumerate(ds.iter_batches(batch_size=K, batch_format="numpy")):
        if i == 0:
            first_at = time.perf_counter()
            continue
        patches += batch["lr"].shape[0] * batch["lr"].shape[1]
    return first_at - start, patches / (time.perf_counter() - first_at)


def stream_vs_in_process(tasks: int) -> None:
    base = in_process(tasks)
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for actors in (1, 2, 1, 2):  # alternated, best of two each: the box may be shared
        runs[actors].append(streamed(actors, tasks))
    (up1, one), (up2, two) = (max(runs[a], key=lambda r: r[1]) for a in (1, 2))
    print(f"(a) baseline in-process DegradeWorker : {base:8.1f} patches/s")
    print(f"    Ray Data stream, 1 actor          : {one:8.1f} patches/s   ratio vs baseline: {one / base:.2f}x")
    print(f"(b) Ray Data stream, 2 actors         : {two:8.1f} patches/s   ratio vs 1 actor : {two / one:.2f}x")
    print(f"    (goal >= 1.70x; start-up to the first batch: {up1:.1f} s with 1 actor, {up2:.1f} s with 2)")


# (c): a training loop fed by the stream against the same batches from memory


def make_model() -> nn.Module:
    torch.manual_seed(0)
    body = [m for _ in range(4) for m in (nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())]
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        *body,
        nn.Conv2d(32, 3 * SCALE**2, 3, padding=1),
        nn.PixelShuffle(SCALE),
    )


class Loop:
    """L1 training of :func:`make_model` on (k, n, 3, h, w) batches; ``run`` times a segment of steps."""

    def __init__(self) -> None:
        self.model = make_model()
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-4)

    def step(self, batch: Batch) -> None:
        lr = batch["lr"].flatten(0, 1).float() / 255
        hr = batch["hr"].flatten(0, 1).float() / 255
        loss = (self.model(lr) - hr).abs().mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def run(self, batches: Iterable[Batch], steps: int, kept: list[Batch] | None = None) -> tuple[float, float]:
        """(wall s, this process's CPU s) of ``steps`` steps on the next batches; each kept when ``kept`` is given."""
        wall, cpu = time.perf_counter(), time.process_time()
        for _, batch in zip(range(steps), batches, strict=False):
            if kept is not None:
                kept.append(batch)
            self.step(batch)
        return time.perf_counter() - wall, time.process_time() - cpu


@dataclass
class Alternation:
    """(c)'s figures: per segment pair (streamed wall s, CPU s, in-memory wall s, CPU s), the streamed segments'
    share of time waiting for a batch, an actor's busy share at that pace, data/consumer_ms, the last batches."""

    pairs: list[tuple[float, float, float, float]]
    wait: float
    busy: float
    consumer_ms: float
    kept: list[Batch]


def alternated(cfg: Config, plan: DataPlan, steps: int, segment: int, warm: int) -> Alternation:
    """One run, streamed and in-memory segments alternated (S M, M S, ...)."""
    cfg.train.steps = warm + steps  # the stream's length: read to its end, so Ray's iterator closes while Ray is up
    shard = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).streaming_split(1, equal=True)[0]
    meter = task_batches(shard, K, "cpu", depth=2, actors=1)  # as Ray Train hands a worker its shard
    stream: Iterator[Batch] = iter(meter)
    loop = Loop()
    loop.run(stream, warm)  # the stream's start-up and the first steps stay out of the figures
    meter.metrics()
    pairs, kept, started = [], [], time.perf_counter()
    for i in range(steps // segment):
        if i % 2 == 0:  # streamed first, then the same batches from memory
            kept = []
            fed = loop.run(stream, segment, kept)
            memory = loop.run(iter(kept), segment)
        else:  # the previous segment's batches from memory first, then the stream
            memory = loop.run(iter(kept), segment)
            kept = []
            fed = loop.run(stream, segment, kept)
        pairs.append((*fed, *memory))
    elapsed, data = time.perf_counter() - started, meter.metrics().logged()
    for _ in stream:  # nothing left after the last segment; this ends the pass
        pass
    fed_s = sum(p[0] for p in pairs)
    wait, busy = (data[key] * elapsed / fed_s for key in ("data/wait_frac", "data/actor_util"))
    return Alternation(pairs, wait, busy, data["data/consumer_ms"], kept)


def batch_mb(batch: Batch) -> float:
    return sum(v.numel() * v.element_size() for v in batch.values()) / 1e6


def report_alternation(a: Alternation, steps: int, segment: int) -> None:
    ratios = Spread([m / f for f, _, m, _ in a.pairs])  # streamed steps/s over in-memory steps/s
    fed_s, fed_cpu, memory_s, memory_cpu = (sum(p[i] for p in a.pairs) for i in range(4))
    overhead, mb = 1e3 * (fed_cpu - memory_cpu) / steps, batch_mb(a.kept[0])
    print(f"(c) baseline training from memory     : {steps / memory_s:8.2f} steps/s")
    print(
        f"    training fed by the stream        : {steps / fed_s:8.2f} steps/s   ratio vs baseline: "
        f"{ratios.median:.2f}x ({ratios}; segments of {segment} steps, totals {memory_s / fed_s:.2f}x)"
    )
    print(
        f"    (goal >= 0.95x; the streamed segments waited {a.wait:.2f} of their time for a batch, "
        f"data/consumer_ms {a.consumer_ms:.2f}; an actor keeping pace is busy {a.busy:.2f} of the time)"
    )
    print(
        f"    CPU per step: consumer process {1e3 * fed_cpu / steps:.1f} ms streamed vs "
        f"{1e3 * memory_cpu / steps:.1f} ms in memory = {overhead:.1f} ms for a {mb:.2f} MB batch "
        f"({overhead / mb:.1f} ms/MB)"
    )


# (d): the consumer alone, on rows already made


def consumer_alone(cfg: Config, plan: DataPlan, mb: float, passes: int = 3) -> None:
    rows = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).materialize()
    per_batch = []
    for _ in range(passes):
        cpu, count = time.process_time(), 0
        for _batch in task_batches(rows.streaming_split(1, equal=True)[0], K, "cpu", depth=2):
            count += 1
        per_batch.append(1e3 * (time.process_time() - cpu) / count)
    alone = statistics.median(per_batch)
    print(
        f"(d) consumer alone, rows already made  : {alone:.1f} ms CPU per {mb:.2f} MB batch = {alone / mb:.1f} ms/MB "
        f"(goal <= 3; passes {', '.join(f'{x:.1f}' for x in per_batch)} ms)"
    )


# (e): the step beside a busy DegradeWorker against the step alone


def busy_degrading(ready) -> None:
    """A DegradeWorker making rows without end, as an actor running ahead of the step does; sets ``ready``."""
    torch.set_num_threads(1)
    cfg = workload(1)
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    ready.set()
    for first in itertools.count(0, K):
        list(worker({"id": np.arange(first, first + K)}))


def beside_actor(batches: list[Batch], steps: int, segment: int) -> Spread:
    """Per segment pair, in-memory steps/s beside :func:`busy_degrading` over steps/s with it stopped."""
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    busy = spawn.Process(target=busy_degrading, args=(ready,), daemon=True)
    busy.start()
    ready.wait()
    loop, ratios = Loop(), []
    loop.run(itertools.cycle(batches), segment)
    for i in range(steps // segment):
        wall = {}
        for on in (True, False) if i % 2 == 0 else (False, True):
            os.kill(busy.pid, signal.SIGCONT if on else signal.SIGSTOP)
            wall[on] = loop.run(itertools.cycle(batches), segment)[0]
        ratios.append(wall[False] / wall[True])
    busy.kill()
    busy.join()
    return Spread(ratios)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=960, help="tasks per stream in (a) and (b)")
    p.add_argument("--steps", type=int, default=210, help="training steps of each kind in (c)")
    p.add_argument("--segment", type=int, default=10, help="steps per alternated segment in (c)")
    args = p.parse_args(argv)
    if args.segment < 1 or args.steps < args.segment or args.steps % args.segment:
        p.error(f"--steps must be a positive multiple of --segment, got {args.steps} and {args.segment}")
    if (args.steps // args.segment) % 2 == 0:  # an even count has no middle pair
        p.error(f"--steps / --segment must be an odd number of segment pairs, got {args.steps // args.segment}")
    torch.set_num_threads(1)
    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"workload: CMDSR tasks of {N} patches, LR {PATCH}^2 x{SCALE}, k={K} tasks per batch; one thread each")
    print(f"machine: {os.cpu_count()} cores; Ray started with 4 logical CPUs (1 per actor, 1 for read tasks)")
    print("load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))

    stream_vs_in_process(args.tasks)
    cfg = workload(1)
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    fed = alternated(cfg, plan, args.steps, args.segment, warm=5)
    report_alternation(fed, args.steps, args.segment)
    consumer_alone(cfg, plan, batch_mb(fed.kept[0]))
    beside = beside_actor(fed.kept, args.steps, args.segment)
    print(f"(e) the step beside a DegradeWorker making rows flat out vs alone: {beside.median:.2f}x ({beside})")
    keeping_pace = 1 - (1 - beside.median) * fed.busy
    print(f"    (so next to an actor keeping pace, busy {fed.busy:.2f} of the time in (c): {keeping_pace:.3f}x)")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    ray.shutdown()


if __name__ == "__main__":
    main()
