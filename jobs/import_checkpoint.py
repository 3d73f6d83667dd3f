"""Import an official CMDSR, DASR or CDSR checkpoint (the papers' own code's .pt/.pth state dict) as a blindsr
checkpoint folder, and optionally register it, so published weights are evaluated with the platform's protocols.

    python jobs/import_checkpoint.py CMDSR_x4.pt outputs/imported/cmdsr_x4 --register cmdsr_x4 --alias official
    python jobs/import_checkpoint.py DASR/experiment/blindsr_x4_bicubic_iso/model/model_600.pt \\
        outputs/imported/dasr_x4 --register dasr_x4 --alias official
    python jobs/evaluate.py models:/dasr_x4@official --protocol cdsr9 --root ~/data/benchmarks

The layout (which code wrote it) and the architecture (scale, width, depth, support size) are read from the keys
and shapes; the key translation is written down in blindsr/artifacts/official.py. The file is read with
weights_only=True: nothing in it runs. The folder holds config.yaml (the family's ``code`` preset, CDSR's
``paper``, with the imported model) and model.safetensors, and loads like any checkpoint (jobs/evaluate.py,
jobs/upscale.py, export).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blindsr import console
from blindsr.artifacts import checkpoint
from blindsr.artifacts.official import imported
from blindsr.tracking import RegistryError, Tracker, resolve_uri, set_alias


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="the official .pt/.pth file (a state dict)")
    p.add_argument("out", type=Path, help="the blindsr checkpoint folder to write")
    p.add_argument("--register", metavar="NAME", help="also register it in MLflow as NAME")
    p.add_argument("--alias", default="official", help="alias of the registered version (default: official)")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    return p


def run(args: argparse.Namespace) -> int:
    which, cfg, model = imported(args.source)
    folder = checkpoint.save(args.out, cfg, model, {}, {"step": 0, "imported_from": str(args.source)})
    print(f"imported official {which} x{cfg.scale} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"wrote {folder}")
    if args.register:
        uri = resolve_uri(args.tracking_uri)
        tracker = Tracker(uri)
        tracker.start("blindsr-imports", args.register, {"source": str(args.source), "official": which})
        version = tracker.log_model(model, cfg, args.register, None)
        tracker.end("FINISHED" if version else "FAILED")
        if version is None:
            raise RegistryError(f"registering {args.register} failed: {tracker.summary()}")
        set_alias(uri, args.register, version, args.alias)
        print(f"registered models:/{args.register}/{version} as models:/{args.register}@{args.alias} at {uri}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
