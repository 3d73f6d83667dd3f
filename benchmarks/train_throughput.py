"""Training-step throughput on one device, and what it takes to keep it fed.

    python benchmarks/train_throughput.py [--device cuda] [--quick | --tiny] [--models cmdsr,cdsr,dasr]
        [--precisions fp32,bf16] [--compile auto|on|off] [--stream-steps 20] [--json FILE]

Workloads, at the papers' batches unless ``--quick`` (reduced sizes, CPU in under 3 minutes) or ``--tiny``
(the test's) shrink them; the header says which:

* ``cmdsr``: ``cmdsr_paper`` ×4, 8 tasks × 40 patches of 48² LR (two halves of n = 20), SRResNet-10, t0 = 10.
* ``cdsr``: ``cdsr_paper`` ×4, 32 tasks × (query, key) of 48² LR, 10 RRDB-DQA blocks, LPE encoder + MoCo.
* ``dasr``: the same batch and schedule with DASR (5 groups × 5 DA blocks).

For each workload:

1. **Step alone**: steps/s of the training step (``blindsr.train.trainer``: the very step the Ray workers
   run, with its optimisers, EMA off) on one synthetic uint8 batch already on the device, converted to float
   each step as the loop does, for every precision, eager and compiled. **Baseline: fp32 eager**, a plain
   PyTorch loop over the same model; every other row prints its ratio to it.
2. **Fed by the stream**: the fastest eager precision fed by the real Ray Data stream as a Ray Train worker
   reads it (``DegradeWorker`` actors → the training columns → ``streaming_split`` → ``task_batches``),
   steps/s, its ratio to the step alone, and the fraction of wall time the loop waits for data
   (the feed's ``data/wait_frac``); once per ``--placements`` (``scaling.degrade_on``: ``actor`` rows of
   LR + HR, ``trainer``: HR windows degraded on this device before the step).
3. **Budget**: the paper schedule (the preset's ``train.steps``) × the best step time alone, in hours; the
   step's FLOPs (``torch.utils.flop_counter``, forward + backward) and the FLOP/s the best step achieves, on
   CUDA as a share of the device's dense bf16 peak (:data:`BF16_PEAK`); and the CPU cores of degradation per
   device it needs: patches/s the step consumes ÷ patches/s one core of ``DegradeWorker`` makes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import ray
import ray.data  # before console.configure, which quiets the loggers these imports set up
import torch
from torch.utils.flop_counter import FlopCounterMode

from blindsr import console
from blindsr.config import Config, build_config
from blindsr.data.actor import DegradeWorker
from blindsr.train.runner import to_float
from blindsr.train.trainer import Trainer, build_trainer

PRESETS = {"cmdsr": ("cmdsr_paper", []), "cdsr": ("cdsr_paper", []), "dasr": ("cdsr_paper", ["model.name=dasr"])}
SHRINK = {  # reduced sizes: the same code paths, fewer FLOPs
    "quick": {
        "cmdsr": ["data.patch_size=24", "data.tasks_per_step=2", "model.support_size=4", "data.patches_per_task=8",
                  "model.n_feats=32"],
        "cdsr": ["data.patch_size=24", "data.tasks_per_step=4", "model.n_blocks=2", "model.n_feats=32",
                 "model.moco_queue=256"],
        "dasr": ["data.patch_size=24", "data.tasks_per_step=4", "model.moco_queue=256"],
    },
    "tiny": {
        "cmdsr": ["data.patch_size=12", "data.tasks_per_step=2", "model.support_size=2", "data.patches_per_task=4",
                  "model.n_feats=8", "model.n_blocks=1", "scale=2"],
        "cdsr": ["data.patch_size=12", "data.tasks_per_step=2", "model.n_blocks=1", "model.n_feats=8",
                 "model.moco_queue=32", "model.codebook_size=16", "scale=2"],
        "dasr": ["data.patch_size=12", "data.tasks_per_step=2", "model.moco_queue=32", "scale=2"],
    },
}  # fmt: skip
# dense (no sparsity) bf16 tensor-core peak in FLOP/s, by the words of torch.cuda.get_device_name; first match wins
BF16_PEAK = {("H100", "PCIE"): 756e12, ("H100",): 989e12, ("H200",): 989e12, ("A100",): 312e12,
             ("L40S",): 362e12, ("L4",): 121e12}  # fmt: skip


@dataclass
class Row:
    precision: str
    compiled: bool
    fed_by: str  # "memory" (synthetic, device-resident), "stream" (degraded by the actors) or "stream, trainer'
    steps_per_s: float
    ratio: float = 0.0  # to the baseline (fp32 eager, memory); stream rows: to the same precision alone
    wait_frac: float | None = None


@dataclass
class Result:
    model: str
    size: str
    batch: str
    rows: list[Row] = field(default_factory=list)
    paper_steps: int = 0
    projected_hours: float = 0.0
    step_flops: int = 0  # one training step, forward + backward (a multiply-add is 2 FLOPs)
    achieved_flops_per_s: float = 0.0  # step_flops x the best step's steps/s
    device: str = ""
    bf16_peak: float | None = None  # FLOP/s, when the device is in BF16_PEAK
    patches_per_step: int = 0
    patches_per_s_per_core: float = 0.0
    cores_per_device: float = 0.0


def workload(name: str, size: str, precision: str = "fp32", compiled: bool = False) -> Config:
    preset, overrides = PRESETS[name]
    shrink = SHRINK.get(size, {}).get(name, [])
    return build_config(
        preset,
        overrides=[*overrides, *shrink, f"train.precision={precision}", f"train.compile={str(compiled).lower()}",
                   "train.channels_last=false", "train.ema_decay=0"],
    )  # fmt: skip


def synthetic_batch(cfg: Config, device: torch.device) -> dict[str, torch.Tensor]:
    """uint8 ``lr`` (k, m, 3, p, p) / ``hr`` (k, m, 3, s·p, s·p) on ``device``, HR a smooth random field and LR its
    s×s box average (what the loss sees matters little for speed; NaN-free values do)."""
    g = torch.Generator().manual_seed(0)
    k, m, p, s = cfg.data.tasks_per_step, cfg.data.patches_per_task, cfg.data.patch_size, cfg.scale
    hr = torch.rand(k * m, 3, p, p, generator=g)
    hr = torch.nn.functional.interpolate(hr, scale_factor=s, mode="bilinear", align_corners=False)
    lr = torch.nn.functional.avg_pool2d(hr, s)
    as_u8 = lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return {"lr": as_u8(lr).view(k, m, 3, p, p).to(device), "hr": as_u8(hr).view(k, m, 3, s * p, s * p).to(device)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_alone(trainer: Trainer, batch: dict[str, torch.Tensor], steps: int, warm: int, device: torch.device) -> float:
    """Steps/s of ``trainer`` on the same device-resident batch, timed after ``warm`` steps (compilation)."""
    for _ in range(warm):
        trainer.step(*to_float(batch, device))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(*to_float(batch, device))
    sync(device)
    return steps / (time.perf_counter() - start)


def fed_by_stream(
    cfg: Config, device: torch.device, steps: int, warm: int, actors: int, placement: str = "actor"
) -> tuple[float, float]:
    """(steps/s, data/wait_frac) of the eager step of ``cfg`` fed by the Ray Data stream, after ``warm`` steps,
    with the degradation on the actors or on this (the train) worker (``scaling.degrade_on``)."""
    from blindsr.data.feed import stream_columns
    from blindsr.data.plan import plan_resources
    from blindsr.data.stream import task_batches, train_dataset

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, **console.ray_init_options())
    ray.data.DataContext.get_current().enable_progress_bars = False
    cfg.scaling.degrade_actors, cfg.scaling.degrade_on = actors, placement
    k = cfg.data.tasks_per_step
    plan = plan_resources(cfg.scaling, ray.cluster_resources(), reserve_train=False)
    cfg.train.steps, cfg.scaling.num_workers = steps + warm, 1
    ds = train_dataset(cfg, plan=plan, columns=stream_columns(placement))
    trainer = build_trainer(cfg, device)
    shard = ds.streaming_split(1, equal=True)[0]
    meter = task_batches(shard, k, device, cfg.data.prefetch_batches, degrade_on=placement, actors=actors)
    start = 0.0
    for i, batch in enumerate(meter):
        if i == warm:
            sync(device)
            meter.metrics()  # the stream's start-up stays out of wait_frac
            start = time.perf_counter()
        trainer.step(*to_float(batch, device))
    sync(device)
    return steps / (time.perf_counter() - start), meter.metrics().wait_frac


def bf16_peak(device_name: str) -> float | None:
    """The dense bf16 peak FLOP/s of a CUDA device named ``device_name``, None when it is not in the table."""
    words = set(re.split(r"[\s_-]+", device_name.upper()))
    return next((peak for key, peak in BF16_PEAK.items() if words.issuperset(key)), None)


def step_flops(trainer: Trainer, batch: dict[str, torch.Tensor], device: torch.device) -> int:
    """FLOPs of one training step of ``trainer`` on ``batch``, as ``torch.utils.flop_counter`` counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step(*to_float(batch, device))
    return int(counter.get_total_flops())


def degradation_per_core(cfg: Config, tasks: int) -> float:
    """Patches/s of one ``DegradeWorker`` on one thread for ``cfg``'s degradations and crops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
        list(worker({"id": np.arange(1)}))  # warm: kernels, resize weights
        start = time.perf_counter()
        list(worker({"id": np.arange(1, 1 + tasks)}))
        return tasks * cfg.data.patches_per_task / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def measure(name: str, args: argparse.Namespace, device: torch.device) -> Result:
    base = workload(name, args.size)
    k, m, p, s = base.data.tasks_per_step, base.data.patches_per_task, base.data.patch_size, base.scale
    result = Result(name, args.size, f"{k} tasks x {m} patches of {p}^2 LR, x{s}, {base.model.name}")
    batch = synthetic_batch(base, device)
    compiles = {"on": [False, True], "off": [False], "auto": [False, True] if device.type == "cuda" else [False]}
    for compiled in compiles[args.compile]:
        for precision in args.precisions:
            trainer = build_trainer(workload(name, args.size, precision, compiled), device)
            rate = step_alone(trainer, batch, args.steps, args.warm + (2 if compiled else 0), device)
            result.rows.append(Row(precision, compiled, "memory", rate))
            if not result.step_flops:  # the first row, fp32 eager: the count does not depend on precision
                result.step_flops = step_flops(trainer, batch, device)
            del trainer
    baseline = result.rows[0].steps_per_s
    for row in result.rows:
        row.ratio = row.steps_per_s / baseline
    best = max(result.rows, key=lambda r: r.steps_per_s)
    if args.stream_steps > 0:
        eager = max((r for r in result.rows if not r.compiled), key=lambda r: r.steps_per_s)
        for placement in args.placements:
            cfg = workload(name, args.size, eager.precision)
            rate, wait = fed_by_stream(cfg, device, args.stream_steps, args.warm, args.actors, placement)
            fed = "stream" if placement == "actor" else "stream, trainer"
            result.rows.append(Row(eager.precision, False, fed, rate, rate / eager.steps_per_s, wait))
    result.paper_steps = build_config(PRESETS[name][0]).train.steps
    result.projected_hours = result.paper_steps / best.steps_per_s / 3600
    result.achieved_flops_per_s = result.step_flops * best.steps_per_s
    result.device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result.bf16_peak = bf16_peak(result.device) if device.type == "cuda" else None
    result.patches_per_step = k * m
    result.patches_per_s_per_core = degradation_per_core(base, args.degrade_tasks)
    result.cores_per_device = k * m * best.steps_per_s / result.patches_per_s_per_core
    return result


def report(r: Result) -> str:
    lines = [f"{r.model}: {r.batch} ({r.size} size)"]
    for row in r.rows:
        what = f"{row.precision}{' compiled' if row.compiled else ''}, {row.fed_by}"
        versus = "vs same alone" if row.fed_by.startswith("stream") else "vs fp32 eager"
        wait = f", wait_frac {row.wait_frac:.2f}" if row.wait_frac is not None else ""
        lines.append(f"  {what:<24} {row.steps_per_s:9.3f} steps/s   {row.ratio:5.2f}x {versus}{wait}")
    lines.append(
        f"  paper schedule: {r.paper_steps:,} steps x best step time = {r.projected_hours:.1f} h on this device"
        + ("" if r.size == "paper" else " (at reduced sizes, not the paper's)")
    )
    work = f"  work: {r.step_flops / 1e12:.3g} TFLOP per step; best step {r.achieved_flops_per_s / 1e12:.3g} TFLOP/s"
    if r.bf16_peak:
        mfu = r.achieved_flops_per_s / r.bf16_peak
        at_40 = r.paper_steps * r.step_flops / (0.4 * r.bf16_peak) / 3600
        peak = f"{r.device} bf16 dense peak ({r.bf16_peak / 1e12:.0f} TFLOP/s)"
        work += f" = {mfu:.1%} of the {peak}; the paper schedule at 40% of it: {at_40:.1f} h"
    elif r.device != "cpu":
        work += f" ({r.device}: no bf16 peak in BF16_PEAK)"
    lines.append(work)
    lines.append(
        f"  degradation: {r.patches_per_s_per_core:.0f} patches/s per CPU core; the best step eats "
        f"{r.patches_per_step} patches per step = {r.cores_per_device:.2f} cores per device"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Result]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick", help="reduced sizes (CPU)")
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="the test's sizes")
    p.set_defaults(size="paper")
    p.add_argument("--models", default="cmdsr,cdsr,dasr")
    p.add_argument("--precisions", default=None, help="comma-separated; default fp32,bf16")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="auto: on CUDA only")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 20; quick/tiny 3)")
    p.add_argument("--warm", type=int, default=2, help="untimed steps first (compiled rows: 2 more)")
    p.add_argument("--stream-steps", type=int, default=None, help="0 skips the stream (default 20; quick/tiny 4)")
    p.add_argument("--placements", default="actor,trainer", help="scaling.degrade_on values fed by the stream")
    p.add_argument("--actors", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="degradation actors")
    p.add_argument("--degrade-tasks", type=int, default=None, help="tasks timed for the per-core rate")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    small = args.size != "paper"
    args.precisions = (args.precisions or "fp32,bf16").split(",")
    args.placements = args.placements.split(",")
    args.steps = args.steps or (3 if small else 20)
    args.stream_steps = (4 if small else 20) if args.stream_steps is None else args.stream_steps
    args.degrade_tasks = args.degrade_tasks or (4 if small else 8)
    if "fp16" in args.precisions and args.device != "cuda":
        p.error("fp16 needs --device cuda")
    console.configure(verbose=False)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; sizes: {args.size}; baseline: fp32 eager step, same batch")
    results = []
    for model in args.models.split(","):
        results.append(measure(model, args, device))
        print(report(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "results": [asdict(r) for r in results]}, indent=2))
    return results


if __name__ == "__main__":
    main()
