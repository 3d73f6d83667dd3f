"""The data plane at paper scale: memory, start-up and speed of the HR pool as the training set grows.

    python benchmarks/dataset_scale.py [--sizes 25,50,100] [--actors 1,2,4] [--images DIR] [--sections 1,2,3,4,5]

DIV2K-sized photographs (2040 × 1356 PNG, ``blindsr.data.synthetic``) are written for the largest size, or
``--images`` names a real folder. Workload: ``cmdsr_paper`` rows (40 patches of 48² LR, ×4) from that folder.

1. **Pool memory**, for each size and actor count: actors built as Ray Data builds them (one process each),
   each measured after its imports and rows from a one-image pool, and again after making rows for ``--seconds``
   from the measured pool. Per actor: private memory beyond that (anonymous pages: USS also counts file pages,
   of libraries and of the pool, that no other process has touched yet, and they turn shared when one does), the
   pool pages no other process has mapped yet; the node's total: the actors' proportional memory (shared pages
   once) + the object store.
   ``node``: the node's mapped pool (blindsr); **baseline** ``copy``: each actor decodes its own pool (the
   DegradeWorker before it). Also actor start-up (process, imports and a first row, then the pool), with the CPU
   seconds each process spent to its first row, and patches/s per actor.
2. **Shards**: the same for a pool read from Parquet shards (``jobs/prepare_shards.py``) at the largest size.
3. **Windows**: rows/s of one worker drawing from windows (``data.pool_memory_gb`` = a quarter of the pool) vs the
   resident pool, one thread each; and the DF2K (3,450 images) extrapolation of the measured memory slope.
4. **Stream vs DataLoader** at equal producers (medians of ``--repeats`` paired runs): patches/s delivered to a
   consumer that only touches each batch, and the first batch, for the Ray stream and a PyTorch ``DataLoader``
   whose workers call ``DegradeWorker.make`` per task (default collate of k tasks), as a user would write it
   (**baseline**; OpenCV then runs its own pool of all cores in each worker) and with every worker on one core,
   as an actor of 1 CPU is.
5. **Start-up vs schedule**: first batch of a 64M-task stream vs a 400-task one (alternated pairs, each stream
   in a fresh Ray: Ray's start not counted, its actors' and the dataset's are).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import ray.data  # before console.configure, which quiets the loggers these imports set up

from blindsr import console
from blindsr.config import Config, build_config
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import TRAIN_COLUMNS
from blindsr.data.images import list_image_files

DF2K_IMAGES = 3450


def workload(source: str, *overrides: str) -> Config:
    return build_config("cmdsr_paper", overrides=[f"data.source={source}", f"data.val_source={source}", *overrides])


def smaps(pid: int | str = "self", path: str | None = None) -> dict[str, float]:
    """MB of ``/proc/<pid>/smaps_rollup`` (``Pss``, ``uss``); with ``path``, also ``file``: that file's private
    resident pages (mapped by this process only)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        kb = {ln.split(":")[0]: float(ln.split()[1]) for ln in f if ln.split(":")[0].replace("_", "").isalpha()}
    out = {"pss": kb["Pss"] / 1024, "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, "file": 0.0,
           "anon": kb["Anonymous"] / 1024}  # fmt: skip
    inside = False
    for line in open(f"/proc/{pid}/smaps").read().splitlines() if path else []:
        if not line.split(":")[0].replace("_", "").isalpha():  # a mapping's header: "start-end perms … path"
            inside = line.endswith(path)
        elif inside and line.startswith(("Private_Clean", "Private_Dirty")):
            out["file"] += float(line.split()[1]) / 1024
    return out


@ray.remote(num_cpus=0.25)
class Probe:
    """One actor's process: imports and a first row (its start), then rows from a one-image pool for as long as
    the measured run (heap and Ray's buffers grown), then the measured pool."""

    def __init__(self, warm_source: str) -> None:
        cfg = workload(warm_source)  # one image: what a worker holds besides its pool (imports, buffers of a task)
        self.warm_worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
        self.warm_worker.make(0)
        self.start_cpu_s = sum(os.times()[:2])  # this process's CPU seconds from its start to here

    def warm(self, seconds: float) -> float:
        tasks, start = 1, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.warm_worker.make(tasks)
            tasks += 1
        self.base = smaps()
        return self.start_cpu_s

    def run(self, source: str, kind: str, seconds: float) -> dict[str, float]:
        if kind == "copy":  # the baseline: this process decodes the whole pool into its own memory
            import blindsr.data.actor as actor
            from blindsr.data.pool import NodePool
            from blindsr.data.sources import load_source

            actor.node_pool = lambda src, split, min_size, recursive, cache_dir: NodePool(
                (p := load_source(src, split, min_size, recursive)), None, [], sum(i.pixels.nbytes for i in p.images)
            )
        cfg = workload(source)
        start = time.perf_counter()
        worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
        built = time.perf_counter() - start
        tasks, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            worker.make(tasks)
            tasks += 1
        rate = tasks * cfg.data.patches_per_task / (time.perf_counter() - start)
        now = smaps(path=None if kind == "copy" else _mapped_path(worker))
        return {"built_s": built, "patches_per_s": rate, "uss": now["uss"] - self.base["uss"],
                "anon": now["anon"] - self.base["anon"], "pss": now["pss"] - self.base["pss"],
                "pool_pages": now["file"]}  # fmt: skip


def _mapped_path(worker: DegradeWorker) -> str:
    from blindsr.data.pool import PIXELS, default_cache_dir, entry_name

    cache = worker.data.cache_dir or default_cache_dir()
    return str(Path(cache) / entry_name(worker.data.source, "train", worker.data.recursive) / PIXELS)


def pool_memory(source: str, kind: str, actors: int, seconds: float, warm: str) -> dict[str, float]:
    """Start ``actors`` probes (timed to their first row), warm them, run them at once, and sum what they added."""
    start = time.perf_counter()
    probes = [Probe.remote(warm) for _ in range(actors)]
    ray.get([p.__ray_ready__.remote() for p in probes])
    started = time.perf_counter() - start
    cpu = ray.get([p.warm.remote(seconds) for p in probes])
    store = ray.available_resources().get("object_store_memory", 0.0)
    runs = ray.get([p.run.remote(source, kind, seconds) for p in probes])
    store -= ray.available_resources().get("object_store_memory", 0.0)
    for p in probes:
        ray.kill(p)
    pick = lambda key: [r[key] for r in runs]  # noqa: E731
    return {
        "start_s": started + max(pick("built_s")), "built_s": max(pick("built_s")), "cpu_s": statistics.mean(cpu),
        "uss": max(pick("uss")), "private": max(pick("anon")), "pool_pages": max(pick("pool_pages")),
        "node": sum(pick("pss")) + store / 2**20, "patches_per_s": statistics.mean(pick("patches_per_s")),
    }  # fmt: skip


def stream_vs_loader(source: str, producers: int, batches: int) -> dict[str, float]:
    """(patches/s, first-batch s) of the Ray stream and of a DataLoader, ``producers`` each, k tasks a batch."""
    import torch

    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import task_batches, train_dataset

    cfg = workload(source, f"scaling.degrade_actors={producers}", f"train.steps={batches + 1}")
    k, n = cfg.data.tasks_per_step, cfg.data.patches_per_task
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)

    def consume(batches_iter) -> tuple[float, float]:
        start = time.perf_counter()
        first, count = 0.0, 0
        for i, batch in enumerate(batches_iter):
            int(batch["hr"][0, 0, 0, 0, 0])  # touch
            if i == 0:
                first, t1 = time.perf_counter() - start, time.perf_counter()
            count += 1
        return (count - 1) * k * n / (time.perf_counter() - t1), first

    shard = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).streaming_split(1, equal=True)[0]
    ray_rate, ray_first = consume(task_batches(shard, k))

    class Tasks(torch.utils.data.Dataset):
        worker: DegradeWorker | None = None

        def __len__(self) -> int:
            return (batches + 1) * k

        def __getitem__(self, i: int) -> dict[str, np.ndarray]:
            if Tasks.worker is None:  # one per loader process, as each would build its own
                Tasks.worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
            task = Tasks.worker.make(i).task
            return {"lr": task.lr, "hr": task.hr}

    out = {"ray": ray_rate, "ray_first": ray_first}
    for name, init in (("loader", None), ("pinned", one_thread)):
        loader = torch.utils.data.DataLoader(Tasks(), batch_size=k, num_workers=producers, worker_init_fn=init)
        out[name], out[f"{name}_first"] = consume(loader)
    return out


def one_thread(_: int) -> None:
    """A DataLoader worker on one core, as an actor of one CPU (torch's threads are already 1 in a worker)."""
    import cv2

    cv2.setNumThreads(1)


def first_batch(source: str, tasks: int) -> float:
    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import task_batches, train_dataset

    cfg = workload(source, "data.tasks_per_step=8")
    cfg.train.steps = tasks // 8
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    start = time.perf_counter()
    shard = train_dataset(cfg, plan=plan, columns=TRAIN_COLUMNS).streaming_split(1, equal=True)[0]
    for _ in task_batches(shard, 8):
        return time.perf_counter() - start
    raise AssertionError("an empty stream")


def windowed(source: str, raw_gb: float, tasks: int) -> tuple[float, float, int]:
    """(rows/s resident, rows/s in windows of a quarter of the pool, windows crossed)."""
    import torch

    torch.set_num_threads(1)  # as an actor of one CPU
    rates = []
    for budget in ("null", f"{raw_gb / 4:.4f}"):
        cfg = workload(source, f"data.pool_memory_gb={budget}")
        worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
        worker.make(0)
        start = time.perf_counter()
        for t in range(1, tasks + 1):
            worker.make(t)
        rates.append(tasks / (time.perf_counter() - start))
    return rates[0], rates[1], worker.windows.window_of(tasks) + 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="25,50,100", help="pool sizes (images); ignored with --images")
    p.add_argument("--actors", default="1,2,4")
    p.add_argument("--images", type=Path, help="a real folder of HR images instead of synthesised ones")
    p.add_argument("--seconds", type=float, default=6.0, help="rows made per actor, per measurement")
    p.add_argument("--batches", type=int, default=150, help="batches per stream / DataLoader measurement (~40 s)")
    p.add_argument("--repeats", type=int, default=3, help="paired stream / DataLoader runs, each producer count")
    p.add_argument("--pairs", type=int, default=3, help="alternated 400 / 64M-task first-batch pairs")
    p.add_argument("--window-tasks", type=int, default=1200, help="tasks per windows measurement")
    p.add_argument("--sections", default="1,2,3,4,5", help="which of the five sections to run")
    args = p.parse_args(argv)
    sections = {int(x) for x in args.sections.split(",")}
    console.configure(verbose=False)
    work = Path(tempfile.mkdtemp(prefix="blindsr-scale-"))
    os.environ["BLINDSR_CACHE_DIR"] = str(work / "cache")  # this run's node cache, inherited by Ray's processes
    actors = [int(a) for a in args.actors.split(",")]
    from blindsr.data.pool import node_pool
    from blindsr.data.synthetic import write_folder

    if args.images:
        sizes, folders = [len(list_image_files(args.images))], {0: args.images}
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        write_folder(work / "all", max(sizes))
        folders = {}
        for n in sizes:  # links: the same pixels, one folder (and cache entry) per size
            folders[n] = work / f"n{n}"
            folders[n].mkdir()
            for f in sorted((work / "all").iterdir())[:n]:
                (folders[n] / f.name).symlink_to(f)
    warm = work / "warm"
    write_folder(warm, 1)

    def start_ray() -> None:
        cpus = max(8, 2 * max(actors))
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, **console.ray_init_options())
        ray.data.DataContext.get_current().enable_progress_bars = False

    start_ray()
    big = max(sizes)
    source = str(folders.get(big, folders.get(0)))
    raw = {}
    print(f"CPU: {os.cpu_count()} cores; workload cmdsr_paper rows; memory in MB beyond each actor's imports")
    for n in sizes:
        t = time.perf_counter()
        raw[n] = node_pool(str(folders.get(n, folders.get(0))), min_size=192).raw_bytes / 2**20
        print(f"   node cache of {n} images built once in {time.perf_counter() - t:.1f} s")
    if 1 in sections:
        warm_up = Probe.remote(str(warm))  # Ray's own processes are still starting: not the first probe's start
        ray.get(warm_up.__ray_ready__.remote())
        ray.kill(warm_up)
        print("1. pool memory   images  raw MB  actors  kind   start s (CPU s)  pool s  private/actor (+ pool pages)  "
              "node total  (x raw)  patches/s/actor")  # fmt: skip
        for n in sizes:
            for a in actors:
                for kind in ("node", "copy"):
                    r = pool_memory(str(folders.get(n, folders.get(0))), kind, a, args.seconds, str(warm))
                    print(f"   {n:>17} {raw[n]:7.0f} {a:7} {kind:>6} {r['start_s']:8.1f} ({r['cpu_s']:4.1f}) "
                          f"{r['built_s']:7.2f} {r['private']:14.0f} (+ {r['pool_pages']:6.0f}) {r['node']:16.0f} "
                          f"{r['node'] / raw[n]:7.2f}x "
                          f"{r['patches_per_s']:10.0f}", flush=True)  # fmt: skip
    if 2 in sections:
        from blindsr.data.shards import iter_source_images, write_shards

        shards = work / "shards"
        write_shards(iter_source_images(source), str(shards))
        for kind in ("node", "copy"):
            r = pool_memory(str(shards), kind, 1, args.seconds, str(warm))
            print(f"2. shards, {big} images, 1 actor, {kind:>4}: USS {r['uss']:.0f} MB = {r['uss'] / raw[big]:.2f}x "
                  f"raw; node total {r['node'] / raw[big]:.2f}x raw; start {r['start_s']:.1f} s")  # fmt: skip
    if 3 in sections:  # in this process, before any stream runs
        resident, windows, crossed = windowed(source, raw[big] / 1024, args.window_tasks)
        print(
            f"3. windows of a quarter of the pool: {windows:.1f} vs {resident:.1f} rows/s resident = "
            f"{windows / resident:.2f}x ({crossed} windows crossed)"
        )
        if len(sizes) > 1:
            slope = (raw[sizes[-1]] - raw[sizes[0]]) / (sizes[-1] - sizes[0])
            print(
                f"   DF2K ({DF2K_IMAGES} images) at {slope:.1f} MB/image: {slope * DF2K_IMAGES / 1024:.1f} GB per "
                f"node (node pool, any number of actors) vs x actors (a copy each)"
            )
    if 4 in sections:
        for producers in (1, 2):
            runs = [stream_vs_loader(source, producers, args.batches) for _ in range(args.repeats)]
            for r in runs:
                r["vs_loader"], r["vs_pinned"] = r["ray"] / r["loader"], r["ray"] / r["pinned"]
            m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            each = ", ".join(f"{r['vs_loader']:.2f}" for r in runs)
            print(
                f"4. {producers} producer(s), median of {len(runs)}: Ray stream {m['ray']:.0f} patches/s vs "
                f"DataLoader {m['loader']:.0f} = {m['vs_loader']:.2f}x "
                f"({each}), vs one core a worker {m['pinned']:.0f} = "
                f"{m['vs_pinned']:.2f}x; first batch {m['ray_first']:.1f} s vs {m['loader_first']:.1f} s"
            )
    if 5 in sections:
        pairs = []
        for _ in range(args.pairs):  # each stream in a Ray of its own: an abandoned one holds its actors a while
            pair = []
            for tasks in (400, 64_000_000):
                ray.shutdown()
                start_ray()
                pair.append(first_batch(source, tasks))
            pairs.append(tuple(pair))
        ratios = [long / short for short, long in pairs]
        print(
            f"5. first batch, 400 vs 64M tasks: {', '.join(f'{s:.1f}/{lg:.1f} s' for s, lg in pairs)}; "
            f"median ratio {statistics.median(ratios):.2f}x"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
