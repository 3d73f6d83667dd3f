"""Command line of the training jobs (``jobs/train_<paper>.py``: cmdsr, cdsr, cdcl, kdsr): parse, build the
config (preset → ``--config`` YAML → ``--set`` overrides), train on Ray, evaluate the registered version with the
family's paper protocol (printed, and logged into the run that registered it), print where the results are."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from blindsr import console
from blindsr.config import Config, ConfigError, add_override_argument, apply_overrides, build_config, parse_override
from blindsr.models.family import check_paper

if TYPE_CHECKING:
    from blindsr.train.launch import TrainOutcome

# the --preset choices of each job: <family>_<kind>, except DASR's own presets in the CDSR job (its baseline)
PRESET_KINDS = {
    "cmdsr": ("paper", "code", "demo", "smoke"),
    "cdsr": ("paper", "demo", "smoke", "dasr_paper", "dasr_code"),
    "cdcl": ("paper", "large", "demo", "smoke"),
    "kdsr": ("paper", "large", "demo", "smoke"),
}


def preset_name(family: str, kind: str) -> str:
    return kind if kind.startswith("dasr_") else f"{family}_{kind}"


# the evaluation protocol of each family's paper
PROTOCOLS = {"cmdsr": "cmdsr", "cdsr": "cdsr9", "cdcl": "dasr_iso", "kdsr": "gaussian8"}


def parser(family: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--preset",
        default="demo",
        choices=PRESET_KINDS[family],
        help=f"starting point: {family}_<preset> (paper: the paper's text; code: the official code's settings)",
    )
    p.add_argument("--config", help="YAML file of overrides on top of the preset")
    add_override_argument(p, "dotted override, e.g. --set optim.lr=2e-4 (repeatable)")
    p.add_argument("--name", help="run name: checkpoints, MLflow run; the same name resumes")
    return p


def config_from_args(family: str, args: argparse.Namespace) -> Config:
    named = [v for k, v in map(parse_override, args.overrides or []) if k == "model.name"]
    if named and (wrong := check_paper(family, str(named[-1]))):  # before the rules of a model this job never trains
        raise ConfigError(wrong)
    cfg = build_config(preset_name(family, args.preset), args.config, args.overrides)
    if args.name:
        cfg = apply_overrides(cfg, {"name": args.name}, origin="--name")
    if wrong := check_paper(family, cfg.model):
        raise ConfigError(wrong)
    return cfg


def evaluate_registered(family: str, cfg: Config, outcome: TrainOutcome) -> None:
    """The registered version on the validation images (crops of 256) with the family's protocol and bicubic as
    the reference row: the table printed, its metrics and ``table.md`` logged into the run that registered it
    (under ``eval/<protocol>``), then where to look at the run."""
    if outcome.model_version is None:
        print("no model was registered; skipping the evaluation")
        return
    from blindsr.evaluation import LEGENDS, evaluate
    from blindsr.evaluation.record import choose_cases, choose_device, log_table
    from blindsr.tracking import RegistryError, load_model, registered_name, run_page

    protocol, store = PROTOCOLS[family], cfg.tracking.tracking_uri or ""
    uri = f"models:/{registered_name(cfg.model.name, cfg.scale)}/{outcome.model_version}"
    model = load_model(uri, store).to(choose_device(None, cfg.scaling.use_gpu)).eval()
    cases = choose_cases(protocol, cfg.scale, val_source=cfg.data.val_source, crop=256)
    n = len({(c.set, c.image) for c in cases})
    table = evaluate({uri: model}, cases, cfg.scale, f"{protocol} x{cfg.scale}, {n} image(s)")
    table.legend = LEGENDS.get(protocol, "")
    print(table.markdown())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "table.md").write_text(table.markdown() + "\n")
            log_table(store, table, protocol, {uri: outcome.run_id}, [Path(tmp) / "table.md"])
        print(f"logged {len(table.model_metrics(protocol, uri))} evaluation metrics and eval/{protocol}/table.md "
              f"to MLflow run {outcome.run_id}")  # fmt: skip
        print(run_page(store, outcome.run_id))
    except RegistryError as e:  # the model is registered and the table printed: say it, do not fail the job
        print(f"the evaluation was not logged to MLflow: {e}")


def main(family: str, doc: str, argv: list[str] | None = None) -> int:
    """Parse ``argv``, train, evaluate the registered version. Returns the process exit code."""
    return console.job(parser(family, doc), lambda args: run(family, args), argv)


def run(family: str, args: argparse.Namespace) -> int:
    from blindsr.data.plan import local_cluster, plan_resources, preflight

    cfg = config_from_args(family, args)
    for source in dict.fromkeys((cfg.data.source, cfg.data.val_source)):
        preflight(source)  # a missing dataset folder fails now, before Ray starts
    if not os.environ.get("RAY_ADDRESS"):
        plan_resources(cfg.scaling, local_cluster(), announce=False)  # as does a plan the local Ray cannot hold
    from blindsr.train.launch import fit, resolve_paths

    cfg = resolve_paths(cfg)  # resolved here too: the evaluation reads the same MLflow URI
    print(console.run_line(cfg))
    d = cfg.data
    progress = console.Progress(
        cfg.train.steps, d.tasks_per_step * d.patches_per_task * cfg.scaling.num_workers, cfg.train.log_every
    )
    try:
        outcome = fit(cfg, progress=progress)
    finally:
        progress.close()
    print(outcome.describe())
    evaluate_registered(family, cfg, outcome)
    return 0
