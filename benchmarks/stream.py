"""Data-plane throughput: the Ray Data stream of task rows against in-process and in-memory baselines.

Workload: CMDSR tasks of n = 8 patches, LR 24² at ×4 (HR 96²), the CMDSR training distribution (15×15
isotropic kernel, MATLAB bicubic, AWGN), k = 4 tasks per batch, the built-in corpus; every actor and the
consumer use one thread. All in one run:

    python benchmarks/stream.py [--tasks 960] [--steps 200] [--segment 10]

(a) patches/s delivered to a consumer through Ray Data (1 actor) vs baseline: the same DegradeWorker
    called in-process. Both timed from their first batch on (the stream's start-up, mostly the actor's
    torch import, is reported apart), both from a cold operator cache.
(b) the stream with 2 actors vs 1 actor (runs alternated 1, 2, 1, 2; the better of each pair). Goal: ≥ 1.7×.
(c) steps/s of a small ×4 SR training loop (6 convs, one thread, model step ≫ batch time) fed by the stream
    (1 actor) exactly as a train worker reads it: the training columns only, ``streaming_split`` (the executor
    runs in Ray's split coordinator, not in the consumer), ``task_batches`` (numpy views of the actors' Arrow
    output, tensors without a copy) vs baseline: the same batches replayed from memory by the same loop. One
    training run alternates the two in segments of ``--segment`` (10) steps, streamed/memory then
    memory/streamed, ``--steps`` (200) of each: this machine's speed drifts by ±10 % between runs seconds
    apart (in-memory runs alone), more than the difference measured, and segments a second long share the
    drift. The actor runs ahead of the loop, so while it works it is beside both kinds of segment; (e)
    measures what that costs the step. ``--segment`` = ``--steps`` gives one whole streamed run, then one in
    memory. Printed: the median of the segment pairs' ratios (goal: streamed ≥ 0.95 of in-memory), their
    quartiles and the ratio of the totals; the consumer process's CPU per step streamed minus in memory.
(d) the consumer alone: the same training rows already made (materialised in the object store), read exactly
    as a worker reads them (``streaming_split`` → ``task_batches``) with no step: the consumer process's CPU
    per batch and per MB (median of 3 passes). Baseline: the same batches from a list (≈ 0). Goal: ≤ 3 ms per MB.
(e) what (c)'s alternation shares between its segments: the in-memory loop beside a DegradeWorker making rows
    flat out in its own process vs alone (that process stopped with SIGSTOP), segments alternated as in (c).
    An actor that keeps up with the step is busy only part of the time (data/actor_util), so this bounds its cost.
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
import time  # noqa: E402

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from blindsr.config import Config, build_config  # noqa: E402
from blindsr.data.actor import DegradeWorker  # noqa: E402
from blindsr.data.feed import TRAIN_COLUMNS  # noqa: E402
from blindsr.data.plan import plan_resources  # noqa: E402
from blindsr.data.stream import build_dataset, task_batches, train_dataset  # noqa: E402

K, N, PATCH, SCALE = 4, 8, 24, 4


def workload(actors: int) -> Config:
    cfg = build_config(
        "cmdsr_paper",
        overrides=[f"data.patch_size={PATCH}", f"data.patches_per_task={N}", f"data.tasks_per_step={K}"],
    )
    cfg.scaling.degrade_actors = actors
    return cfg


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
    ds = build_dataset(
        cfg, "train", tasks, plan=plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    )
    start = time.perf_counter()
    first_at, patches = 0.0, 0
    for i, batch in enumerate(ds.iter_batches(batch_size=K, batch_format="numpy")):
        if i == 0:
            first_at = time.perf_counter()
            continue
        patches += batch["lr"].shape[0] * batch["lr"].shape[1]
    return first_at - start, patches / (time.perf_counter() - first_at)


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

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        lr = batch["lr"].flatten(0, 1).float() / 255
        hr = batch["hr"].flatten(0, 1).float() / 255
        loss = (self.model(lr) - hr).abs().mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def run(self, batches, steps: int, kept: list | None = None) -> tuple[float, float]:
        """(wall s, this process's CPU s) of ``steps`` steps on the next batches; each kept when ``kept`` is given."""
        wall, cpu = time.perf_counter(), time.process_time()
        for _, batch in zip(range(steps), batches, strict=False):
            if kept is not None:
                kept.append(batch)
            self.step(batch)
        return time.perf_counter() - wall, time.process_time() - cpu


def alternated(cfg: Config, plan, steps: int, segment: int, warm: int):
    """(c): one run, streamed and in-memory segments alternated (S M, M S, ...). Returns per pair (streamed wall,
    CPU, in-memory wall, CPU); over the streamed segments' time, the share spent waiting for a batch and the
    actor seconds that made their rows (an actor keeping pace would be busy that share); ``data/consumer_ms``;
    the last segment's batches."""
    cfg.train.steps = warm + steps  # the stream's length: read to its end, so Ray's iterator closes while Ray is up
    shard = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).streaming_split(1, equal=True)[0]
    meter = task_batches(shard, K, "cpu", depth=2, actors=1)  # as Ray Train hands a worker its shard
    stream, loop = iter(meter), Loop()
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
    return pairs, wait, busy, data["data/consumer_ms"], kept


def spread(ratios: list[float]) -> tuple[float, str]:
    """(median, "median of N alternated pairs; quartiles a-b") of per-pair ratios, as (c) and (e) print them."""
    ordered, quartile = sorted(ratios), len(ratios) // 4
    median = ordered[len(ordered) // 2]
    return median, (
        f"median of {len(ordered)} alternated pairs; quartiles {ordered[quartile]:.2f}-{ordered[-1 - quartile]:.2f}"
    )


def busy_degrading(ready) -> None:
    """A DegradeWorker making rows without end, as an actor running ahead of the step does; sets ``ready``."""
    torch.set_num_threads(1)
    cfg = workload(1)
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    ready.set()
    for first in itertools.count(0, K):
        list(worker({"id": np.arange(first, first + K)}))


def beside_actor(batches: list, steps: int, segment: int) -> list[float]:
    """(e): per segment pair, in-memory steps/s beside :func:`busy_degrading` over steps/s with it stopped."""
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
    return ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=960, help="tasks per stream in (a) and (b)")
    p.add_argument("--steps", type=int, default=200, help="training steps of each kind in (c)")
    p.add_argument("--segment", type=int, default=10, help="steps per alternated segment in (c)")
    args = p.parse_args()
    if args.segment < 1 or args.steps < args.segment or args.steps % args.segment:
        p.error(f"--steps must be a positive multiple of --segment, got {args.steps} and {args.segment}")
    torch.set_num_threads(1)
    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"workload: CMDSR tasks of {N} patches, LR {PATCH}^2 x{SCALE}, k={K} tasks per batch; one thread each")
    print(f"machine: {os.cpu_count()} cores; Ray started with 4 logical CPUs (1 per actor, 1 for read tasks)")
    print("load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))

    base = in_process(args.tasks)
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for actors in (1, 2, 1, 2):  # alternated, best of two each: the box may be shared
        runs[actors].append(streamed(actors, args.tasks))
    (up1, one), (up2, two) = (max(runs[a], key=lambda r: r[1]) for a in (1, 2))
    print(f"(a) baseline in-process DegradeWorker : {base:8.1f} patches/s")
    print(f"    Ray Data stream, 1 actor          : {one:8.1f} patches/s   ratio vs baseline: {one / base:.2f}x")
    print(f"(b) Ray Data stream, 2 actors         : {two:8.1f} patches/s   ratio vs 1 actor : {two / one:.2f}x")
    print(f"    (goal >= 1.70x; start-up to the first batch: {up1:.1f} s with 1 actor, {up2:.1f} s with 2)")

    cfg = workload(1)
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    pairs, wait, busy, consumer_ms, kept = alternated(cfg, plan, args.steps, args.segment, warm=5)
    mb = sum(v.numel() * v.element_size() for v in kept[0].values()) / 1e6
    ratio, pairs_line = spread([m / f for f, _, m, _ in pairs])  # streamed steps/s over in-memory steps/s
    fed_s, fed_cpu, memory_s, memory_cpu = (sum(p[i] for p in pairs) for i in range(4))
    overhead = 1e3 * (fed_cpu - memory_cpu) / args.steps
    print(f"(c) baseline training from memory     : {args.steps / memory_s:8.2f} steps/s")
    print(
        f"    training fed by the stream        : {args.steps / fed_s:8.2f} steps/s   ratio vs baseline: "
        f"{ratio:.2f}x ({pairs_line}; segments of {args.segment} steps, totals {memory_s / fed_s:.2f}x)"
    )
    print(
        f"    (goal >= 0.95x; the streamed segments waited {wait:.2f} of their time for a batch, "
        f"data/consumer_ms {consumer_ms:.2f}; an actor keeping pace is busy {busy:.2f} of the time)"
    )
    print(
        f"    CPU per step: consumer process {1e3 * fed_cpu / args.steps:.1f} ms streamed vs "
        f"{1e3 * memory_cpu / args.steps:.1f} ms in memory = {overhead:.1f} ms for a {mb:.2f} MB batch "
        f"({overhead / mb:.1f} ms/MB)"
    )
    rows = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).materialize()
    passes = []
    for _ in range(3):
        cpu, count = time.process_time(), 0
        for _batch in task_batches(rows.streaming_split(1, equal=True)[0], K, "cpu", depth=2):
            count += 1
        passes.append(1e3 * (time.process_time() - cpu) / count)
    alone = sorted(passes)[1]
    print(
        f"(d) consumer alone, rows already made  : {alone:.1f} ms CPU per {mb:.2f} MB batch = {alone / mb:.1f} ms/MB "
        f"(goal <= 3; passes {', '.join(f'{x:.1f}' for x in passes)} ms)"
    )
    beside, pairs_line = spread(beside_actor(kept, args.steps, args.segment))
    print(f"(e) the step beside a DegradeWorker making rows flat out vs alone: {beside:.2f}x ({pairs_line})")
    print(f"    (so next to an actor keeping pace, busy {busy:.2f} of the time in (c): {1 - (1 - beside) * busy:.3f}x)")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    ray.shutdown()


if __name__ == "__main__":
    main()
