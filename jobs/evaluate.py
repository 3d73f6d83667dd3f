"""Evaluate models on a paper protocol: PSNR/SSIM (Y) per test set × degradation, with a bicubic row and,
for conditional models (CMDSR), an oracle-support row next to self-support.

    python jobs/evaluate.py models:/cdsr_x4@champion --protocol cdsr9 --root ~/data/benchmarks --sets Set5 Set14
    python jobs/evaluate.py outputs/ckpt/checkpoint_000100 models:/cmdsr_x4/3 --protocol cmdsr   # corpus val
    python jobs/evaluate.py models:/cdsr_x4@latest --protocol div2krk --root ~/data/DIV2KRK --log
    python jobs/evaluate.py models:/cdsr_x4@champion --protocol cdsr9 --images ~/photos/holiday ~/data/RealSRSet

Writes table.md, table.csv (and per_image.csv, sr/ on request) under --out; --log adds the metrics
eval/<protocol>/<set>/<degradation>/psnr_y (and ssim_y, *_bicubic, *_oracle) and the files to the MLflow run
behind each model (a new run in experiment blindsr-eval for a checkpoint folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blindsr import console
from blindsr.data.benchmarks import ALIASES
from blindsr.errors import InputError
from blindsr.evaluation import LEGENDS, PROTOCOLS, Table, evaluate
from blindsr.evaluation.record import choose_cases, choose_device, log_table
from blindsr.infer import load
from blindsr.models.inference import model_scale
from blindsr.tracking import resolve_uri, run_page


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "models", nargs="+", help="models:/name@alias, models:/name/VERSION, runs:/ID/model or a checkpoint folder"
    )
    p.add_argument("--protocol", default="cmdsr", choices=PROTOCOLS)
    p.add_argument("--scale", type=int, help="default: the first model's scale")
    p.add_argument("--root", help="folder with Set5/Set14/B100/Urban100 (DIV2KRK: its own folder); default: corpus val")
    p.add_argument("--sets", nargs="+", choices=list(ALIASES), help="default: every set found under --root")
    p.add_argument(
        "--images", nargs="+", metavar="DIR", help="folders of HR images, each a test set named after the folder"
    )
    p.add_argument("--crop", type=int, default=0, help="centre-crop HR images to this side (0: whole images)")
    p.add_argument("--out", help="output folder (default outputs/eval/<protocol>_x<scale>)")
    p.add_argument("--cache", default="outputs/eval/lr_cache", help="generated-LR cache ('' to disable)")
    p.add_argument("--per-image", action="store_true", help="also write per_image.csv")
    p.add_argument("--save-images", action="store_true", help="write SR images under <out>/sr/")
    p.add_argument("--log", action="store_true", help="log metrics and files to MLflow")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--tile", type=int, default=0, help="tiled inference with this LR tile side (0: whole image)")
    p.add_argument("--seed", type=int, default=0, help="seed of the self-support and oracle-support crops")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--ray", action="store_true", help="score the images in parallel Ray tasks ($RAY_ADDRESS or local)")
    return p


def write_outputs(table: Table, out: Path, per_image: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "table.md", out / "table.csv"]
    files[0].write_text(table.markdown() + "\n")
    files[1].write_text(table.csv())
    if per_image:
        files.append(out / "per_image.csv")
        files[2].write_text(table.per_image_csv())
    return files


def run(args: argparse.Namespace) -> int:
    uri = resolve_uri(args.tracking_uri)
    if args.ray and args.save_images:
        raise InputError("--save-images writes images on this machine; it cannot be combined with --ray")
    models = {source: load(source, uri, choose_device(args.device)) for source in args.models}
    scale = args.scale or model_scale(next(iter(models.values())))
    where = {"root": args.root, "sets": args.sets, "images": args.images or (), "crop": args.crop}
    cases = choose_cases(args.protocol, scale, **where, cache=args.cache or None)
    n = len({(c.set, c.image) for c in cases})
    title = f"{args.protocol} x{scale}, {n} image(s)"
    out = Path(args.out or f"outputs/eval/{args.protocol}_x{scale}")
    save = out / "sr" if args.save_images and not args.ray else None
    sources = {source: source for source in args.models} if args.ray else None
    options = {"seed": args.seed, "tile": args.tile, "save_dir": save, "sources": sources, "tracking_uri": uri}
    table = evaluate(models, cases, scale, title, **options)
    table.legend = LEGENDS.get(args.protocol, "")
    print(table.markdown())
    files = write_outputs(table, out, args.per_image)
    print(f"wrote {', '.join(str(f) for f in files)}")
    if args.log:
        for source, run in log_table(uri, table, args.protocol, dict.fromkeys(args.models), files).items():
            count = len(table.model_metrics(args.protocol, source))
            print(f"logged {count} metrics of {source} to MLflow run {run} at {uri}")
            print(run_page(uri, run))
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
