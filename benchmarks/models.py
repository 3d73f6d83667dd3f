"""Model forward time: CMDSR (ConditionNet + modulated BaseNet) vs the plain SRResNet-10 BaseNet, and CDSR.

    python benchmarks/models.py [--repeats 5] [--device cuda]

Baseline ("SRResNet-10"): the unconditioned BaseNet on the same query batch.
Candidate ("CMDSR"): ConditionNet on the support + 20 modulated convs, each computed as conv(x · f) (the
exact, batch-free equivalent of scaling each sample's weights). The paper's Table III reports 39.19 ms vs
29.84 ms, a ratio of 1.31; goal ≤ 1.35. CDSR is timed per batch of 48×48 LR patches.
Settings: ×4, the test-time task (1 image, 20 self-support crops of 32²) and a training-like task batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from blindsr.config import ModelConfig
from blindsr.models import MODELS, build_model
from blindsr.models.cmdsr import CMDSR


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, measured interleaved (one call of each per round, after a
    warm-up round) so that load changes on a shared machine hit every candidate alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    cmdsr = build_model(ModelConfig(name="cmdsr"), 4).to(dev).eval()
    assert isinstance(cmdsr, CMDSR)
    base = cmdsr.base

    settings = {
        "test: 1 image 128x128, 20 self-support crops 32x32": (
            torch.rand(1, 3, 128, 128),
            torch.rand(1, 20, 3, 32, 32),
        ),
        "train: 4 tasks x 20 queries 48x48, support 20x48x48": (
            torch.rand(80, 3, 48, 48),
            torch.rand(4, 20, 3, 48, 48),
        ),
    }
    print(f"device {dev}, threads {torch.get_num_threads()}, median of {args.repeats}, x4")
    for name, (lr, support) in settings.items():
        lr, support = lr.to(dev), support.to(dev)
        t = timed(
            {
                "base": lambda: base(lr),  # noqa: B023
                "cmdsr": lambda: cmdsr(lr, support),  # noqa: B023
            },
            args.repeats,
            dev,
        )
        t_base, t_cmdsr = t["base"], t["cmdsr"]
        print(f"\n{name}")
        print(f"  baseline SRResNet-10      : {1000 * t_base:8.1f} ms")
        ratio = t_cmdsr / t_base
        print(f"  CMDSR                     : {1000 * t_cmdsr:8.1f} ms   ratio {ratio:.2f} (paper 1.31, goal <= 1.35)")

    if "cdsr" in MODELS:
        cdsr = build_model(ModelConfig(name="cdsr"), 4).to(dev).eval()
        for batch in (1, 8):
            lr = torch.rand(batch, 3, 48, 48, device=dev)
            t = timed({"cdsr": lambda: cdsr(lr)}, args.repeats, dev)["cdsr"]  # noqa: B023
            per = 1000 * t / batch
            print(f"\nCDSR (10 blocks, x4), batch of {batch} 48x48 LR: {1000 * t:8.1f} ms ({per:.1f} ms/patch)")


if __name__ == "__main__":
    main()
