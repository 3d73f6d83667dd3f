"""Command line of the training jobs (``jobs/train_cmdsr.py``, ``jobs/train_cdsr.py``): parse, build the
config (preset → ``--config`` YAML → ``--set`` overrides), train on Ray, print where the results are."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from blindsr.config import Config, ConfigError, add_override_argument, build_config
from blindsr.data.sources import DatasetError

PRESET_KINDS = ("paper", "demo", "smoke")


def parser(family: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", choices=PRESET_KINDS, help=f"starting point: {family}_<preset>")
    p.add_argument("--config", help="YAML file of overrides on top of the preset")
    add_override_argument(p, "dotted override, e.g. --set optim.lr=2e-4 (repeatable)")
    p.add_argument("--name", help="run name: checkpoints, MLflow run; the same name resumes")
    return p


def config_from_args(family: str, args: argparse.Namespace) -> Config:
    cfg = build_config(f"{family}_{args.preset}", args.config, args.overrides)
    if args.name:
        cfg.name = args.name
    if family == "cdsr" and cfg.model.name not in ("cdsr", "dasr"):
        raise ConfigError(f"model.name={cfg.model.name!r}: train_cdsr.py trains cdsr or dasr; use train_cmdsr.py")
    if family == "cmdsr" and cfg.model.name in ("cdsr", "dasr"):
        raise ConfigError(f"model.name={cfg.model.name!r}: use train_cdsr.py for contrastive models")
    return cfg


def main(
    family: str, doc: str, argv: list[str] | None = None, after: Callable[[Config, object], None] | None = None
) -> int:
    """Parse ``argv``, train, then call ``after(cfg, outcome)``. Returns the process exit code."""
    args = parser(family, doc).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from blindsr.data.stream import DataPlanError, preflight

    try:
        cfg = config_from_args(family, args)
        for source in dict.fromkeys((cfg.data.source, cfg.data.val_source)):
            preflight(source)  # a missing dataset folder fails now, before Ray starts
    except (ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from blindsr.train.launch import NonFiniteLossError, fit, resolve_paths

    try:
        outcome = fit(resolve_paths(cfg))  # resolved here too: ``after`` reads the same MLflow URI
    except (ConfigError, DatasetError, DataPlanError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(outcome.describe())
    if after is not None:
        after(cfg, outcome)
    return 0
