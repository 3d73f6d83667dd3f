"""Run an ablation or hyper-parameter sweep from a search-space file on Ray Tune, tracked in MLflow (one parent
run, one nested run per trial), evaluate every trial's final model with the file's protocol, then write the
paper-style report (``jobs/report.py``).

    python jobs/sweep.py search_spaces/cmdsr_t8_t0.yaml --budget demo
    python jobs/sweep.py search_spaces/cmdsr_hp_asha.yaml --budget demo --set train.steps=300
    python jobs/sweep.py search_spaces/cmdsr_t8_t0.yaml --budget demo --resume       # after an interruption
    python jobs/sweep.py search_spaces/cmdsr_t8_t0.yaml --budget demo --seeds 3      # mean ± std of 3 seeds
    ray job submit --working-dir . -- python jobs/sweep.py search_spaces/cdsr_t10_blocks.yaml --budget paper \\
        --bench-root /data/benchmarks --set train.storage_path=s3://bucket/blindsr-runs

Budgets: smoke (seconds per trial, tests), demo (minutes per trial on a laptop), paper (the paper's setting).
"""

from __future__ import annotations

import argparse
import sys

from blindsr import console
from blindsr.config import add_override_argument
from blindsr.report import write_report
from blindsr.space import BUDGETS, load_space


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", help="search-space YAML (search_spaces/*.yaml)")
    p.add_argument("--budget", default="demo", choices=BUDGETS, help="preset of every trial: <family>_<budget>")
    add_override_argument(p, "dotted override for every trial, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--name", help="sweep name (default <space>-<budget>): Tune folder and MLflow parent run")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep of this name")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="run every row N times, seeds = each trial's config seed + 0..N-1; the report shows mean ± std "
        "(default name <space>-<budget>-seedsN when N > 1: resume with the same N)",
    )
    p.add_argument("--bench-root", help="folder with the file's test sets (Set5, ...); default: corpus val split")
    p.add_argument("--max-concurrent", type=int, help="cap on trials at once (default: what the cluster fits)")
    p.add_argument("--dry-run", action="store_true", help="validate the file and print the trial count only")
    return p


def run(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    space.check_seeds(args.seeds)
    space.config(args.budget, args.overrides)  # --set typos fail before Ray starts
    seeds = f" ({space.n_trials()} × {args.seeds} seeds)" if args.seeds > 1 else ""
    print(f"{space.title}: {space.n_trials(args.seeds)} trial(s){seeds} at the {args.budget} budget")
    if args.dry_run:
        return 0
    from blindsr.tune import run_sweep

    outcome = run_sweep(
        space,
        args.budget,
        args.overrides,
        name=args.name,
        resume=args.resume,
        bench_root=args.bench_root,
        max_concurrent=args.max_concurrent,
        seeds=args.seeds,
    )
    print((outcome.folder / "results.md").read_text())
    files = write_report(outcome.folder)
    print(f"MLflow parent run {outcome.parent_run_id} at {outcome.tracking_uri}")
    print("report: " + ", ".join(str(f) for f in files))
    failed = [t["trial"] for t in outcome.trials if t["status"] == "error"]
    if failed:
        print(f"error: trial(s) {', '.join(failed)} failed; fix and re-run with --resume", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
