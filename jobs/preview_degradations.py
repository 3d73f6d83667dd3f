"""Preview a degradation preset: a PNG grid of (HR patch | kernel | LR patch) for k sampled tasks.

python jobs/preview_degradations.py --preset cmdsr_train --tasks 8
python jobs/preview_degradations.py --preset cdsr9 --scale 2 --source /data/Set14
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from blindsr import console
from blindsr.config import ConfigError, add_override_argument, apply_overrides, build_config
from blindsr.data.images import write_png
from blindsr.data.patches import TaskSampler
from blindsr.data.sources import load_source
from blindsr.degradations import TEST_PRESETS, TRAIN_PRESETS
from blindsr.visualize import task_grid


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cmdsr_train", choices=sorted({*TRAIN_PRESETS, *TEST_PRESETS}))
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--tasks", type=int, default=6, help="number of tasks (rows) to sample")
    p.add_argument("--patch", type=int, default=48, help="LR patch side")
    p.add_argument("--source", default="corpus", help="'corpus' or a folder of HR images")
    p.add_argument("--seed", type=int, default=0)
    add_override_argument(p, "override a degradation field of a training preset, e.g. --set noise_range=[0,30]")
    p.add_argument("--out", type=Path, default=Path("outputs/preview"))
    return p


def run(args: argparse.Namespace) -> int:
    cfg = build_config()
    if args.preset in TRAIN_PRESETS:
        cfg.degradation = TRAIN_PRESETS[args.preset](args.scale)
        cfg = apply_overrides(cfg, [f"degradation.{o}" for o in args.overrides])
    elif args.overrides:
        raise ConfigError(f"--set applies to training presets only; {args.preset} is a fixed test set")
    pool = load_source(args.source, split="val", min_size=args.patch * args.scale)

    rng = np.random.default_rng(args.seed)
    sampler = TaskSampler(pool, args.patch, n=1, scale=args.scale, augment=False)
    fixed = None  # a name in both (dasr_iso, dasr_aniso) is the training distribution, as before the test protocols
    if args.preset in TEST_PRESETS and args.preset not in TRAIN_PRESETS:
        fixed = list(TEST_PRESETS[args.preset](args.scale).values())
    count = len(fixed) if fixed else args.tasks
    rows = []
    for i in tqdm(range(count), desc=f"degrading ({args.preset})", unit="task"):
        task = sampler.sample(rng, fixed[i]) if fixed else sampler.sample_random(rng, cfg.degradation)
        rows.append((task.hr[0], task.spec.kernel_array(), task.lr[0], f"{task.image_id}: {task.spec.label()}"))
        print(f"  task {i}: {task.image_id:22s} {task.spec.label()}")
    out = write_png(args.out / f"{args.preset}_x{args.scale}.png", task_grid(rows))
    print(f"{pool.summary()}\nwrote {count} tasks (HR | kernel | LR) to {out.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
