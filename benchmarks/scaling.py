"""Data-parallel scaling: 1 vs 2 workers' steps/s, with gradient averaging that overlaps backward.

    python benchmarks/scaling.py [--device cpu|cuda] [--paper | --tiny] [--models srresnet,cmdsr,cdsr] [--steps 5]
        [--repeats 3]

Each worker is a process of one torch.distributed group (gloo on CPU, NCCL on GPU; one GPU per worker, so
CUDA needs 2 GPUs) running the very training step the Ray Train workers run (``build_trainer``: the family's
step with ``train.distributed.GradientAverager``), each on its own device-resident batch of the preset's size
(weak scaling: ideal is the same steps/s with twice the workers). Printed per workload:

* steps/s with 1 and 2 workers and the **scaling efficiency** = steps/s(2) / steps/s(1) (on CPU each worker
  gets one thread, so 2 workers need 2 free cores; on GPUs the goal is ≥ 0.9 per added GPU);
* the averaging this replaced (backward to the end, then one flat all-reduce) at 2 workers, and ours / it;
* for ``srresnet`` (CMDSR's BaseNet trained alone: one forward and one backward, what DDP wraps), the
  **baseline a user would run instead**: a plain PyTorch loop with ``DistributedDataParallel`` and Adam on the
  same model and batch, at 2 workers; the ratio is ours / DDP.

Workload sizes come from ``train_throughput.py`` (``--quick`` by default on CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from blindsr import console
from blindsr.losses import l1_255
from blindsr.models import build_model
from blindsr.train.runner import to_float
from blindsr.train.trainer import build_trainer
from train_throughput import synthetic_batch, workload  # benchmarks/ is the script's folder


class FlatAfterBackward:
    """The averaging this replaced: backward to the end, then one flat all-reduce (no overlap)."""

    def backward(self, params, loss, backward) -> bool:
        backward(loss)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [torch.isfinite(loss.detach()).float().reshape(1)])
        dist.all_reduce(flat)
        flat[:-1].div_(dist.get_world_size())
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(p)
            offset += g.numel()
        return bool(flat[-1].item() == dist.get_world_size())


def _config(name: str, size: str):
    base = "cmdsr" if name == "srresnet" else name
    cfg = workload(base, size)
    if name == "srresnet":  # the BaseNet alone: the plain SR step
        cfg.model = type(cfg.model)(name="srresnet", n_feats=cfg.model.n_feats, n_blocks=cfg.model.n_blocks)
    return cfg


def _worker(rank: int, world: int, init: str, name: str, size: str, device: str, steps: int, mode: str, out: str):
    torch.set_num_threads(1 if device == "cpu" else torch.get_num_threads())
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{init}", rank=rank, world_size=world)
    dev = torch.device(f"cuda:{rank}" if device == "cuda" else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    cfg = _config(name, size)
    batch = synthetic_batch(cfg, dev)
    if mode == "ddp":  # the plain PyTorch loop: DDP + Adam + L1 on the same model and patches
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(
            build_model(cfg.model, cfg.scale).to(dev), device_ids=[rank] if dev.type == "cuda" else None
        )
        opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)

        def step(lr: torch.Tensor, hr: torch.Tensor) -> None:
            opt.zero_grad(set_to_none=True)
            l1_255(model(lr.flatten(0, 1)), hr.flatten(0, 1)).backward()
            opt.step()
    else:
        step = build_trainer(cfg, dev).step
        if mode == "flat":
            step.averager = FlatAfterBackward()
    for i in range(2 + steps):
        if i == 2:
            dist.barrier()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
        step(*to_float(batch, dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    dist.barrier()
    if rank == 0:
        Path(out).write_text(str(steps / (time.perf_counter() - start)))
    dist.destroy_process_group()


def rate(name: str, size: str, device: str, steps: int, world: int, mode: str = "ours") -> float:
    """Steps/s of rank 0 with ``world`` workers."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rate")
        mp.spawn(_worker, args=(world, f"{tmp}/init", name, size, device, steps, mode, out), nprocs=world, join=True)
        return float(Path(out).read_text())


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.device_count() >= 2 else "cpu", choices=["cpu", "cuda"])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--paper", dest="size", action="store_const", const="paper", help="the papers' batches")
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="the test's sizes")
    p.set_defaults(size="quick")
    p.add_argument("--models", default="srresnet,cmdsr,cdsr")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="alternated 2-worker runs per mode; medians printed")
    args = p.parse_args(argv)
    if args.device == "cuda" and torch.cuda.device_count() < 2:
        p.error(f"2 workers on CUDA need 2 GPUs; this machine has {torch.cuda.device_count()}")
    console.configure(verbose=False)
    threads = "1 thread per worker" if args.device == "cpu" else "one GPU per worker"
    print(
        f"device: {args.device} ({threads}, {os.cpu_count()} cores); sizes: {args.size}; {args.steps} timed steps "
        f"after 2; 2-worker figures: medians of {args.repeats} alternated runs; weak scaling"
    )
    out: dict[str, dict[str, float]] = {}
    for name in args.models.split(","):
        one = rate(name, args.size, args.device, args.steps, 1)
        modes = ["ours", "flat"] + (["ddp"] if name == "srresnet" else [])
        runs: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):  # alternated, so drift on a busy machine hits every mode alike
            for mode in modes:
                runs[mode].append(rate(name, args.size, args.device, args.steps, 2, mode))
        two, flat = statistics.median(runs["ours"]), statistics.median(runs["flat"])
        row = {"1 worker": one, "2 workers": two, "efficiency": two / one, "flat 2 workers": flat}
        line = (
            f"{name}: 1 worker {one:.3f} steps/s, 2 workers {two:.3f} steps/s, scaling efficiency {two / one:.2f}; "
            f"flat all-reduce after backward, 2 workers: {flat:.3f} steps/s (ours {two / flat:.2f}x)"
        )
        if "ddp" in runs:
            ddp = row["ddp 2 workers"] = statistics.median(runs["ddp"])
            line += f"; plain DDP loop, 2 workers: {ddp:.3f} steps/s (ours {two / ddp:.2f}x DDP)"
        out[name] = row
        print(line, flush=True)
    return out


if __name__ == "__main__":
    main()
