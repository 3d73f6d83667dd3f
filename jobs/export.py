"""Export a registered model or a checkpoint folder to ONNX and check it against PyTorch with onnxruntime.

    python jobs/export.py models:/cdsr_x2@champion --onnx exports/cdsr_x2.onnx
    python jobs/export.py checkpoints/<run>/step_002000 --onnx exports/cmdsr.onnx

The graph is the test-time network at batch 1 with dynamic height and width, float32 in [0, 1]: lr
(1, 3, h, w) → sr (1, 3, s·h, s·w). CMDSR is two graphs: NAME.onnx takes lr and a (1, 128) condition,
NAME.condition.onnx turns the support (1, n, 3, p, p), n crops of the LR with p = min(32, h, w), into that
condition. Each export is checked on two LR sizes (max |Δ| ≤ 1e-4) unless --no-check.
Needs the ONNX extra: pip install -c constraints.txt -e '.[onnx]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blindsr import console
from blindsr.errors import InputError
from blindsr.export import CHECK_SIZES, MIN_OPSET, OPSET, TOLERANCE, check_onnx, export_onnx
from blindsr.infer import load
from blindsr.tracking import resolve_uri


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="models:/name@alias, models:/name/VERSION, runs:/ID/model or a checkpoint folder")
    p.add_argument("--onnx", required=True, type=Path, help="where to write the (SR) graph, a .onnx file")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch parity check")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    return p


def run(args: argparse.Namespace) -> int:
    if args.onnx.suffix != ".onnx":
        raise InputError(f"--onnx {args.onnx} must name a .onnx file")
    if args.opset < MIN_OPSET:
        raise InputError(f"--opset {args.opset}: the exporter writes opset {MIN_OPSET} or newer")
    model = load(args.model, resolve_uri(args.tracking_uri), "cpu")
    for path in export_onnx(model, args.onnx, args.opset, args.verbose):
        print(path)
    if not args.no_check:
        worst = check_onnx(model, args.onnx)
        sizes = ", ".join(f"{h}x{w}" for h, w in CHECK_SIZES)
        print(f"onnxruntime matches PyTorch on LR {sizes}: max |Δ| {worst:.1e} (≤ {TOLERANCE:g})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
