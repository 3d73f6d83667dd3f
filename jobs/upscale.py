"""Super-resolve images with a registered model or a checkpoint folder; writes <out>/<name>_x<s>.png.

    python jobs/upscale.py models:/cdsr_x4@champion photo.jpg --out outputs/upscaled
    python jobs/upscale.py models:/cmdsr_x4/3 ~/pictures/ --tile 256 --overlap 16 --fp16

Conditional models self-support from the whole image (seeded); --tile bounds memory on large images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blindsr import console
from blindsr.data.images import write_png
from blindsr.infer import load, upscale
from blindsr.models.inference import model_scale
from blindsr.tracking import resolve_uri


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="models:/name@alias, models:/name/VERSION, runs:/ID/model or a checkpoint folder")
    p.add_argument("inputs", nargs="+", help="image files or folders (top level)")
    p.add_argument("--out", default="outputs/upscaled")
    p.add_argument("--tile", type=int, default=0, help="LR tile side for tiled inference (0: whole image)")
    p.add_argument("--overlap", type=int, default=16, help="LR context pixels around each tile")
    p.add_argument("--seed", type=int, default=0, help="seed of the self-support crops")
    p.add_argument("--fp16", action="store_true", help="half-precision autocast (CUDA only)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    return p


def run(args: argparse.Namespace) -> int:
    model = load(args.model, resolve_uri(args.tracking_uri), args.device)
    scale = model_scale(model)
    for source in args.inputs:
        for name, sr in upscale(model, source, args.tile, args.overlap, args.seed, args.fp16):
            print(write_png(Path(args.out) / f"{name}_x{scale}.png", sr))
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
