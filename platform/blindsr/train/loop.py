"""Ray Train wiring: the only module that imports ``ray.train``.

``fit(cfg)`` runs on the driver: it connects to (or starts) Ray, resolves the MLflow URI and the storage
path, sizes the degradation actors, builds the task stream and a ``TorchTrainer``; re-running with the same
``cfg.name`` resumes from the latest checkpoint (Ray Train V2 semantics). ``train_fn_per_worker`` runs on
every worker: it builds the model and its pure ``train_step`` from the config, consumes its dataset shard,
validates and checkpoints on rank 0, and tracks to MLflow from rank 0 only.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
import ray.train
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer

from blindsr.config import Config, flatten, from_dict, save_yaml, to_dict
from blindsr.data.stream import DataMeter, plan_resources, train_dataset
from blindsr.models import build_model, count_parameters
from blindsr.tracking import Tracker, experiment_name, registered_name, resolve_uri
from blindsr.train import checkpoint
from blindsr.train.distributed import all_gather_cat, world_size
from blindsr.train.step import make_step
from blindsr.validation import build_val_set, validate

log = logging.getLogger(__name__)

VAL_METRIC = "val/psnr_y"


class NonFiniteLossError(RuntimeError):
    """Too many NaN/Inf losses in a row; the message names the step and the last good checkpoint."""


@dataclass
class TrainOutcome:
    run_dir: str
    step: int
    metrics: dict[str, float]
    model_version: str | None
    run_id: str | None
    tracking: str
    stopped: str | None = None
    resumed: int = 0  # the step this (last) attempt started from: 0 for a fresh run
    checkpoint: Checkpoint | None = None  # the latest one, set on the driver (Tune trials evaluate it)

    def describe(self) -> str:
        val = self.metrics.get(VAL_METRIC, math.nan)
        bic = self.metrics.get("val/bicubic_psnr_y", math.nan)
        lines = [
            f"finished at step {self.step}: validation PSNR-Y {val:.2f} dB (bicubic {bic:.2f} dB)"
            + (f", resumed from step {self.resumed}" if self.resumed else ""),
            f"checkpoints: {self.run_dir}",
            f"MLflow run: {self.run_id or '-'}; registered version: {self.model_version or '-'}",
            f"tracking: {self.tracking}",
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# driver side
# ---------------------------------------------------------------------------------------------------


def ensure_ray(local_cpus: int | None = None) -> None:
    """Connect to the cluster of ``$RAY_ADDRESS`` (set by ``ray job submit``), else start a local Ray.

    Locally at least 4 logical CPUs are declared: a train worker, degradation actors and Ray Data's read
    tasks must all get a CPU slot (ray-project/ray#44687), even on a 2-core laptop.
    """
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        # address="local": never join a `ray start` cluster by accident (set RAY_ADDRESS to use one).
        # The dashboard serves the state API, which Ray Train's placement-group cleaner needs: without it the
        # CPUs of a trainer killed mid-run (a trial ASHA stops) stay reserved and later trials wait for ever.
        ray.init(address="local", num_cpus=local_cpus or max(4, os.cpu_count() or 1), include_dashboard=True)


def resolve_paths(cfg: Config, project_dir: str | Path | None = None) -> Config:
    """Fill in the absolute MLflow URI and storage path the workers must use (their cwd is temporary)."""
    project = Path(project_dir or Path.cwd()).resolve()
    cfg.tracking.tracking_uri = resolve_uri(cfg.tracking.tracking_uri, project)
    if not cfg.train.storage_path:
        cfg.train.storage_path = str(project / "outputs" / "ray")
    return cfg


def use_gpu(cfg: Config) -> bool:
    if cfg.scaling.use_gpu is not None:
        return cfg.scaling.use_gpu
    return cfg.train.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= cfg.scaling.num_workers


def fit(
    cfg: Config,
    project_dir: str | Path | None = None,
    *,
    callbacks: Sequence[ray.train.UserCallback] = (),
    tags: Mapping[str, str] | None = None,
    cluster: Mapping[str, float] | None = None,
) -> TrainOutcome:
    """Train ``cfg`` on Ray (local or the connected cluster); resume when ``cfg.name`` has checkpoints.

    A Tune trial (``blindsr.tune.driver``) adds ``callbacks`` (``TuneReportCallback``), MLflow run ``tags``
    (``mlflow.parentRunId`` nests the run under the sweep's) and its ``cluster`` share for the data plan."""
    ensure_ray()
    cfg = resolve_paths(cfg, project_dir)
    run_dir = Path(cfg.train.storage_path) / cfg.name if "://" not in cfg.train.storage_path else None
    done = 0
    if run_dir is not None and (latest := checkpoint.latest_local(run_dir)):
        done = latest[1]
        log.info("resuming %s from step %d (%s)", cfg.name, done, latest[0])
    gpu = use_gpu(cfg)
    cfg.scaling.use_gpu = gpu
    plan = plan_resources(cfg.scaling, cluster=cluster)
    remaining = max(cfg.train.steps - done, 1)
    dataset = train_dataset(
        cfg, steps=remaining, first_task=done * cfg.data.task_size * cfg.scaling.num_workers, plan=plan
    )
    trainer = TorchTrainer(
        train_fn_per_worker,
        train_loop_config={"cfg": to_dict(cfg), "actors": plan.actors, "tags": dict(tags or {})},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.scaling.num_workers,
            use_gpu=gpu,
            resources_per_worker={"CPU": cfg.scaling.cpus_per_worker, **({"GPU": 1} if gpu else {})},
            placement_strategy=cfg.scaling.placement_strategy,
        ),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=cfg.train.storage_path,
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.train.keep_best,
                checkpoint_score_attribute=VAL_METRIC,
                checkpoint_score_order="max",
            ),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            callbacks=list(callbacks),
        ),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    outcome = TrainOutcome(**result.return_value, checkpoint=result.checkpoint)
    if outcome.stopped:
        raise NonFiniteLossError(outcome.stopped)
    return outcome


# ---------------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------------


def _report(cfg: Config, model: torch.nn.Module, step_fn: Any, i: int, rank: int, extra: dict[str, float]) -> None:
    """Rank 0 writes the checkpoint; every rank calls ``ray.train.report`` (it is collective)."""
    if rank != 0:
        ray.train.report({"step": i}, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="blindsr-ckpt-") as tmp:
        checkpoint.save(tmp, cfg, model, step_fn.state_dict(), {"step": i, **extra})
        ray.train.report({"step": i, **extra}, checkpoint=Checkpoint.from_directory(tmp))


def _run_checkpoints(cfg: Config) -> list[Checkpoint]:
    """Every checkpoint folder of the run ``cfg.name`` on its storage (local, NFS or a pyarrow URI), newest
    first: Ray Train names them checkpoint_<timestamp>."""
    if "://" in cfg.train.storage_path:
        fs, root = pyarrow.fs.FileSystem.from_uri(cfg.train.storage_path)
    else:
        fs, root = pyarrow.fs.LocalFileSystem(), cfg.train.storage_path
    infos = fs.get_file_info(pyarrow.fs.FileSelector(posixpath.join(root, cfg.name), allow_not_found=True))
    names = [i.path for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith("checkpoint_")]
    return [Checkpoint(p, filesystem=fs) for p in sorted(names, reverse=True)]


def _restore(cfg: Config, model: torch.nn.Module, step_fn: Any) -> int:
    """Load the newest readable checkpoint of the run into ``model`` and ``step_fn``; return its step (0: none).

    Candidates are the one Ray Train hands over and every checkpoint folder of the run on storage, newest
    first: a worker killed after writing a checkpoint but before Ray Train recorded it still resumes from
    it, and a checkpoint that does not read (truncated or missing files) is skipped with a warning in
    favour of the previous one, on every rank alike. With checkpoints but none readable the run stops
    rather than start over."""
    given = ray.train.get_checkpoint()
    candidates = _run_checkpoints(cfg)
    if given is not None and given.path.rstrip("/") not in {c.path.rstrip("/") for c in candidates}:
        candidates.insert(0, given)
    tried = []
    for ckpt in candidates:
        try:
            with ckpt.as_directory() as folder:
                saved = checkpoint.read(folder)
        except checkpoint.CheckpointError as e:
            log.warning("unreadable checkpoint, falling back to the previous one: %s", e)
            tried.append(str(e))
            continue
        model.load_state_dict(saved.model)
        step_fn.load_state_dict(saved.trainer)
        if tried:
            log.warning(
                "resumed from %s (step %d) instead of the newer unreadable one(s)", ckpt.path, saved.meta["step"]
            )
        return int(saved.meta["step"])
    if tried:
        raise checkpoint.CheckpointError("no readable checkpoint to resume from: " + "; ".join(tried))
    return 0


def train_fn_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    cfg: Config = from_dict(Config, config["cfg"], origin="train_loop_config")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, cfg.scale)
    # Gradients are averaged by the steps themselves (see train/distributed.py), not by a DDP wrapper.
    model = ray.train.torch.prepare_model(model, parallel_strategy=None)
    if world > 1 and hasattr(getattr(model, "encoder", None), "key_gather"):
        model.encoder.key_gather = all_gather_cat  # one MoCo queue across ranks, as with DDP + gathered keys
    step_fn = make_step(model, cfg.optim, cfg.loss, torch.Generator().manual_seed(cfg.seed * 1009 + rank))
    assert world_size() == world, "the process group Ray Train set up is missing"

    start = _restore(cfg, model, step_fn)
    restored = start > 0
    model.to(device)

    tracker = Tracker.for_rank(rank, cfg.tracking.tracking_uri or "")
    val_set = build_val_set(cfg) if rank == 0 else []
    if rank == 0:
        params = {**flatten(cfg), "model/parameters": count_parameters(model), "scaling/world_size": world}
        tracker.start(experiment_name(cfg.model.name, cfg.tracking.experiment), cfg.name, params, config.get("tags"))
        with tempfile.TemporaryDirectory() as tmp:
            tracker.artifact(save_yaml(cfg, Path(tmp) / "config.yaml"))

    shard = ray.train.get_dataset_shard("train")
    meter = DataMeter(shard.iter_torch_batches(batch_size=cfg.data.task_size), actors=config["actors"], consumers=world)
    k, i, metrics, stopped = cfg.data.task_size, start, {}, None
    last_saved, val_metrics = start, {}
    model.train()
    for batch in meter:
        if i >= cfg.train.steps:
            break
        if batch["lr"].shape[0] != k:
            continue  # a short tail batch: skip it on every rank alike
        lr = batch["lr"].to(device, non_blocking=True).float().div_(255)
        hr = batch["hr"].to(device, non_blocking=True).float().div_(255)
        metrics = step_fn(lr, hr)
        i += 1
        if cfg.train.fail_at_step and i == cfg.train.fail_at_step and not restored:
            raise RuntimeError(f"injected failure at step {i} (train.fail_at_step, used by the tests)")
        if step_fn.nonfinite_in_a_row >= cfg.train.max_nonfinite:
            stopped = (
                f"{step_fn.nonfinite_in_a_row} non-finite losses in a row up to step {i}; "
                f"last good checkpoint: step {last_saved} in {Path(cfg.train.storage_path or '') / cfg.name}"
            )
            break
        if i % cfg.train.log_every == 0 and rank == 0:
            tracker.metrics({**metrics, **meter.metrics()}, step=i)
        if i % cfg.train.val_every == 0 or i % cfg.train.checkpoint_every == 0 or i == cfg.train.steps:
            if rank == 0:
                val_metrics, picture = validate(model, val_set, cfg.scale, samples=2 if cfg.tracking.log_images else 0)
                tracker.metrics(val_metrics, step=i)
                if picture is not None:
                    tracker.image(picture, f"samples/step_{i:07d}.png", step=i)
                log.info("step %d: %s %.2f dB", i, VAL_METRIC, val_metrics[VAL_METRIC])
            _report(cfg, model, step_fn, i, rank, {k_: v for k_, v in val_metrics.items() if k_ == VAL_METRIC})
            last_saved = i

    version = None
    if rank == 0 and stopped is None and cfg.tracking.register and i > start:
        example = torch.rand(1, 3, 24, 32)
        version = tracker.log_model(
            model, registered_name(cfg.model.name, cfg.scale), example, val_metrics.get(VAL_METRIC)
        )
        model.to(device)
    if rank == 0:
        tracker.end("FAILED" if stopped else "FINISHED")
    return {
        "run_dir": str(Path(cfg.train.storage_path or "") / cfg.name),
        "step": i,
        "metrics": {**metrics, **val_metrics},
        "model_version": version,
        "run_id": tracker.run_id,
        "tracking": tracker.summary(),
        "stopped": stopped,
        "resumed": start,
    }
