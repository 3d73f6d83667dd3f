"""Ray Tune sweeps: ``Tuner`` → ``driver(trial)`` → ``TorchTrainer`` → ``train_fn_per_worker``.

Each trial runs :func:`driver`, a function trainable that calls ``train.launch.fit`` with ``TuneReportCallback``
(Tune sees rank 0's ``val/psnr_y``, what ASHA prunes on), then evaluates the final checkpoint with the file's
protocol. A trial's resources (driver + train workers + actors) are sized from its share of the cluster. MLflow: one
parent run per sweep, one nested child run per trial; the sweep's files go to ``<project>/outputs/sweeps/<name>``
and the Tune state to ``<train.storage_path>/<name>`` (``resume=True`` continues it)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.train import Checkpoint
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler

from blindsr import console
from blindsr.artifacts import checkpoint
from blindsr.config import Config, apply_overrides, from_dict, to_dict
from blindsr.data.plan import TRIAL_DRIVER_CPUS, trial_cpus, trial_share
from blindsr.errors import UserError
from blindsr.evaluation import BICUBIC, benchmark_sets, evaluate
from blindsr.evaluation.record import choose_cases, choose_device, log_table
from blindsr.report import trials_csv, trials_markdown
from blindsr.space import Space
from blindsr.tracking import Tracker
from blindsr.train.launch import VAL_METRIC, ensure_ray, fit, resolve_devices, resolve_paths
from blindsr.train.runner import LoopHook
from blindsr.tune_console import FINAL_KEY, TrialLines, last_line

log = logging.getLogger(__name__)

SWEEP_DEFAULTS = ["tracking.register=false", "tracking.experiment=blindsr-sweeps"]  # before the user's --set
SWEEP_TAG, ROW_TAG, SEED_TAG = "blindsr.sweep", "blindsr.row", "blindsr.seed"
STATIC, ROW, SEED = "sweep", "row", "seed_offset"  # reserved trial-config keys; the others are dotted config keys


class SweepError(UserError, RuntimeError):
    """A sweep that cannot start or resume; the message says why and what to do."""


@dataclass
class SweepOutcome:
    name: str
    folder: Path  # <project>/outputs/sweeps/<name>: sweep.json, space.yaml, results.md/csv
    tune_path: str
    parent_run_id: str | None
    tracking_uri: str
    trials: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------------
# resources, search space, scheduler
# ---------------------------------------------------------------------------------------------------


def param_space(space: Space, static: dict[str, Any], seeds: int = 1) -> dict[str, Any]:
    """Tune's param_space: ``row`` (grid over row labels), ``seed_offset`` (grid 0..seeds-1, when seeds > 1),
    one domain per dotted key, and the static part."""
    domains = {"grid": tune.grid_search, "choice": tune.choice}
    out: dict[str, Any] = {STATIC: static}
    if space.rows:
        out[ROW] = tune.grid_search([r.label for r in space.rows])
    if seeds > 1:
        out[SEED] = tune.grid_search(list(range(seeds)))
    for key, dist in space.space.items():
        if dist.kind in domains:
            out[key] = domains[dist.kind](dist.values)
        else:
            out[key] = (tune.uniform if dist.kind == "uniform" else tune.loguniform)(*map(float, dist.values))
    return out


def scheduler(space: Space, cfg: Config) -> ASHAScheduler | None:
    """ASHA on ``step`` with rungs on validation steps (grace = grace_fraction of train.steps), else FIFO.

    ``max_t`` is one past ``train.steps``: at ``max_t`` ASHA stops a trial, and a stop at its last report
    would kill the trial before it evaluates its final model."""
    asha = space.scheduler.asha
    if asha is None:
        return None
    every, steps = cfg.train.val_every, cfg.train.steps
    grace = max(every, math.ceil(asha.grace_fraction * steps / every) * every)
    return ASHAScheduler(
        time_attr="step",
        max_t=steps + 1,
        grace_period=min(grace, steps),
        reduction_factor=asha.reduction_factor,
    )


# ---------------------------------------------------------------------------------------------------
# one trial
# ---------------------------------------------------------------------------------------------------


def evaluate_checkpoint(
    ckpt: Checkpoint, label: str, evaluation: dict[str, Any], uri: str, run_id: str | None
) -> dict[str, float]:
    """Score a checkpoint's model (and bicubic, suffix ``_bicubic``) with the file's protocol, log the scores into
    ``run_id`` (the one evaluate-and-log path: ``evaluation.record``) and return them (eval/… metrics)."""
    with ckpt.as_directory() as folder:
        cfg, model = checkpoint.load_model(folder)
    model.to(choose_device(None, cfg.scaling.use_gpu))
    protocol = evaluation["protocol"]
    where = {"root": evaluation["bench_root"], "sets": evaluation["sets"], "crop": evaluation["crop"]}
    cases = choose_cases(protocol, cfg.scale, **where, degradations=evaluation["degradations"])
    table = evaluate({label: model}, cases, cfg.scale, f"{label}: {protocol} x{cfg.scale}", oracle=False)
    if run_id:
        log_table(uri, table, protocol, {label: run_id}, folder="eval")
    return table.model_metrics(protocol, label)


def trial_config(config: dict[str, Any]) -> tuple[Config, str | None]:
    """The trial's ``Config`` (sweep config + its row's settings + its sampled values, then its seed offset
    added to that config's seed) and its row label."""
    static, label = config[STATIC], config.get(ROW)
    sampled = {k: v for k, v in config.items() if k not in (STATIC, ROW, SEED)}
    cfg = from_dict(Config, static["config"], origin="sweep config")
    cfg = apply_overrides(cfg, {**static["rows"].get(label, {}), **sampled}, origin="trial")
    return (apply_overrides(cfg, {"seed": cfg.seed + config[SEED]}, origin="trial") if SEED in config else cfg), label


def driver(config: dict[str, Any], hooks: Sequence[LoopHook] = ()) -> None:
    """Tune function trainable: train the trial with a ``TorchTrainer``, then evaluate its final checkpoint.
    ``hooks`` run in the trial's training loop (``fit(hooks=...)``)."""
    static = config[STATIC]
    cfg, label = trial_config(config)
    trial_id = tune.get_context().get_trial_id()
    cfg = apply_overrides(cfg, {"name": f"{static['name']}-{trial_id}"}, origin="trial")  # stable across restores
    tags = {SWEEP_TAG: static["name"], ROW_TAG: label or trial_id, SEED_TAG: str(cfg.seed)}
    if static["parent_run_id"]:
        tags["mlflow.parentRunId"] = static["parent_run_id"]
    outcome = fit(
        cfg, static["project_dir"], callbacks=[TuneReportCallback()], tags=tags, cluster=static["cluster"], hooks=hooks
    )
    final: dict[str, Any] = {"step": outcome.step, VAL_METRIC: outcome.metrics.get(VAL_METRIC, math.nan)}
    if outcome.checkpoint is not None:
        # outside the trial's placement group: the train workers' resources are free again by now
        task = ray.remote(evaluate_checkpoint).options(
            num_cpus=1, num_gpus=1 if cfg.scaling.use_gpu else 0, scheduling_strategy="DEFAULT"
        )
        uri, run = cfg.tracking.tracking_uri or "", outcome.run_id
        final.update(ray.get(task.remote(outcome.checkpoint, label or trial_id, static["evaluate"], uri, run)))
    tune.report({**final, FINAL_KEY: outcome.run_id or ""})


# ---------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------


def _record(result: Any, space: Space) -> dict[str, Any]:
    """One trial as plain JSON: row, sampled values, status, step, validation history, eval per set."""
    metrics, config = dict(result.metrics or {}), result.config or {}
    hidden = (STATIC, ROW, SEED)
    sampled = {k: (v if isinstance(v, str | bool) else float(v)) for k, v in config.items() if k not in hidden}
    evaluation: dict[str, dict[str, list[float]]] = {"ours": {}, BICUBIC: {}}
    prefix = f"eval/{space.evaluate.protocol}/"
    for key, value in metrics.items():
        if key.startswith(prefix) and key.endswith(("/mean/psnr_y", "/mean/psnr_y_bicubic")):
            test_set = key.removeprefix(prefix).split("/")[0]
            which = BICUBIC if key.endswith("_bicubic") else "ours"
            ssim = metrics[key.replace("psnr_y", "ssim_y")]
            evaluation[which][test_set] = [float(value), float(ssim)]
    history = []
    df = result.metrics_dataframe
    if df is not None and VAL_METRIC in df and "step" in df:
        history = [[int(s), float(v)] for s, v in zip(df["step"], df[VAL_METRIC], strict=True) if v == v]
    status = "error" if result.error else ("finished" if evaluation["ours"] else "stopped early")
    seed = {"seed": trial_config(config)[0].seed} if SEED in config else {}  # only with --seeds: N = 1 as before
    return {
        "trial": metrics.get("trial_id") or Path(result.path).name,
        "row": config.get(ROW),
        **seed,
        "params": sampled,
        "status": status,
        "error": last_line(result.error),
        "step": int(metrics.get("step", 0) or 0),
        "val": float(metrics.get(VAL_METRIC, math.nan)),
        "history": sorted(set(map(tuple, history))),
        "eval": evaluation,
        "run_id": metrics.get(FINAL_KEY) or None,
    }


def run_sweep(
    space: Space,
    budget: str = "demo",
    overrides: list[str] | None = None,
    *,
    name: str | None = None,
    resume: bool = False,
    project_dir: str | Path | None = None,
    bench_root: str | None = None,
    max_concurrent: int | None = None,
    hooks: Sequence[LoopHook] = (),
    callbacks: Sequence[tune.Callback] = (),
    seeds: int = 1,
) -> SweepOutcome:
    """Run (or with ``resume`` continue) the sweep ``space`` at ``budget``; write and log its results table.
    ``hooks`` run in every trial's training loop (the reliability tests' fault injection); ``callbacks`` are
    Tune callbacks on this driver, after the console's (a resumed sweep keeps those it started with).
    ``seeds`` > 1 runs every point that many times, its seed + 0..seeds-1; random dimensions are drawn once per
    sample and shared by its seeds and rows (``constant_grid_search``). A resumed sweep keeps its seeds."""
    space.check_seeds(seeds)
    project = Path(project_dir or Path.cwd()).resolve()
    cfg = resolve_paths(space.config(budget, [*SWEEP_DEFAULTS, *(overrides or [])]), project)
    name = name or f"{space.name}-{budget}" + (f"-seeds{seeds}" if seeds > 1 else "")
    tune_path = f"{cfg.train.storage_path.rstrip('/')}/{name}"
    exists = tune.Tuner.can_restore(tune_path)
    if resume and not exists:
        raise SweepError(f"nothing to resume: no sweep state at {tune_path} (run it once without --resume)")
    if not resume and exists:
        raise SweepError(f"sweep {name!r} already exists at {tune_path}: pass --resume to continue it, or --name NEW")
    evaluation = {
        "protocol": space.evaluate.protocol,
        "degradations": space.evaluate.degradations,
        "sets": space.evaluate.sets,
        "crop": space.evaluate.crop_for(budget),
        "bench_root": str(Path(bench_root).expanduser().resolve()) if bench_root else None,
    }
    if bench_root:  # a missing set fails now, not after hours of training
        benchmark_sets(evaluation["bench_root"], space.evaluate.sets, cfg.scale)
    ensure_ray(local_cpus=max(4, os.cpu_count() or 1, math.ceil(trial_cpus(cfg))))
    cfg = resolve_devices(cfg)
    share = trial_share(cfg, ray.cluster_resources(), space.n_trials(seeds), max_concurrent)
    log.info(
        "sweep %s: %d trial(s), at most %d at once, each with %s",
        name,
        space.n_trials(seeds),
        share.concurrent,
        share.cluster,
    )

    tracker = Tracker(cfg.tracking.tracking_uri or "")
    params = {"sweep.file": str(space.path), "sweep.budget": budget, "sweep.trials": space.n_trials(seeds)}
    params["sweep.seeds"] = seeds  # a resumed sweep's parent run keeps the params it was started with
    tracker.start(
        cfg.tracking.experiment or "blindsr-sweeps",
        name,
        {**params, "sweep.overrides": overrides or []},
        {SWEEP_TAG: name},
    )
    static = {
        "name": name,
        "config": to_dict(cfg),
        "rows": {r.label: r.overrides(budget) for r in space.rows},
        "parent_run_id": tracker.run_id,
        "project_dir": str(project),
        "cluster": share.cluster,
        "evaluate": evaluation,
    }
    trainable = tune.with_resources(tune.with_parameters(driver, hooks=list(hooks)), {"CPU": TRIAL_DRIVER_CPUS})
    search = None  # seeds > 1: this generator holds the concurrency cap (Tune ignores max_concurrent_trials then)
    if seeds > 1:
        search = tune.search.BasicVariantGenerator(max_concurrent=share.concurrent, constant_grid_search=True)
    if resume:
        tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(space, static, seeds),
            tune_config=tune.TuneConfig(
                metric=space.metric,
                mode=space.mode,
                num_samples=space.num_samples,
                max_concurrent_trials=None if search else share.concurrent,
                search_alg=search,
                scheduler=scheduler(space, cfg),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=cfg.train.storage_path,
                verbose=2 if console.verbose() else 0,  # Tune's status tables only with --verbose
                callbacks=[TrialLines(space.metric, space.mode, cfg.train.steps, ROW, (STATIC, ROW)), *callbacks],
            ),
        )
    grid = tuner.fit()
    kept = 1 + max((r.config.get(SEED, 0) for r in grid if r.config), default=0)  # what the Tune state holds
    if kept != seeds:
        log.warning("sweep %s was started with %d seed(s) and keeps them (asked for %d)", name, kept, seeds)
    order = {r.label: i for i, r in enumerate(space.rows)}
    trials = sorted((_record(r, space) for r in grid), key=lambda t: (order.get(t["row"], -1), t["trial"]))

    folder = project / "outputs" / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": name,
        "title": space.title,
        "space_file": str(space.path),
        "budget": budget,
        "overrides": overrides or [],
        "tune_path": tune_path,
        "parent_run_id": tracker.run_id,
        "tracking_uri": cfg.tracking.tracking_uri,
        "scale": cfg.scale,
        "evaluate": evaluation,
        **({"seeds": kept} if kept > 1 else {}),  # a one-seed sweep's record is as before
        "trials": trials,
    }
    (folder / "sweep.json").write_text(json.dumps(meta, indent=1))
    (folder / "space.yaml").write_text(space.text)
    (folder / "results.md").write_text(trials_markdown(space.title, trials))
    (folder / "results.csv").write_text(trials_csv(trials))
    for f in ("space.yaml", "results.md", "results.csv", "sweep.json"):
        tracker.artifact(folder / f)
    failed = [t for t in trials if t["status"] == "error"]
    tracker.end("FAILED" if failed else "FINISHED")
    return SweepOutcome(name, folder, tune_path, tracker.run_id, cfg.tracking.tracking_uri or "", trials)
