"""The function every Ray Train worker runs: ``train_fn_per_worker(config)``.

It builds the model and its pure ``train_step`` from the config, restores the checkpoint the driver chose
(``blindsr.train.launch``), and hands its dataset shard to the Ray-free loop core
(:func:`blindsr.train.runner.run_steps`) with three callables: MLflow logging and validation on rank 0,
and the collective ``ray.train.report`` that writes a checkpoint. Rank 0 tracks to MLflow and registers the
model at the end.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray.train import Checkpoint

from blindsr.artifacts import checkpoint
from blindsr.config import Config, flatten, from_dict, save_yaml
from blindsr.console import Event, losses_of, send
from blindsr.data.stream import task_batches
from blindsr.evaluation.validation import val_cases, validate
from blindsr.models import Family, count_parameters, family_of
from blindsr.tracking import Tracker, experiment_name, registered_name
from blindsr.tracking.system import NodeMonitor, short_node_id
from blindsr.train.distributed import all_gather_cat, world_size
from blindsr.train.runner import Cadence, Metrics, run_steps
from blindsr.train.trainer import Trainer, build_trainer
from blindsr.train.trainer import save as save_trainer

log = logging.getLogger(__name__)

VAL_METRIC = "val/psnr_y"


def _read(given: Checkpoint | None, expected: int) -> checkpoint.Saved | None:
    """The checkpoint the driver chose (it has read it whole already), read again on this worker.

    The driver started this attempt's stream right after that step, so the step read here must be the one
    it expected: anything else would train on the wrong tasks, and fails instead."""
    if given is None:
        return None
    with given.as_directory() as folder:
        saved = checkpoint.read(folder)
    if int(saved.meta["step"]) != expected:
        raise checkpoint.CheckpointError(
            f"{given.path} holds step {saved.meta['step']}, the driver planned the stream after {expected}"
        )
    return saved


def _report(cfg: Config, trainer: Trainer, i: int, rank: int, extra: Metrics) -> None:
    """Rank 0 writes the checkpoint; every rank calls ``ray.train.report`` (it is collective)."""
    if rank != 0:
        ray.train.report({"step": i}, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="blindsr-ckpt-") as tmp:
        save_trainer(tmp, cfg, trainer, {"step": i, **extra})
        ray.train.report({"step": i, **extra}, checkpoint=Checkpoint.from_directory(tmp))


def _system_metrics(cfg: Config, run_id: str | None, rank: int, world: int) -> NodeMonitor | None:
    """Rank 0's run id to every rank, and a monitor on the lowest rank of each Ray node (a collective). Not
    Ray Train's local rank 0: local ranks count per IP, and two Ray nodes on one host share one."""
    if cfg.tracking.system_metrics_every_s <= 0:
        return None
    node = ray.get_runtime_context().get_node_id()
    ranks = [(node, run_id)] * world
    if world > 1:
        dist.all_gather_object(ranks, (node, run_id))
    run_id = ranks[0][1]
    if run_id is None or [n for n, _ in ranks].index(node) != rank:
        return None
    every, retry = cfg.tracking.system_metrics_every_s, cfg.tracking.retry_every_s
    return NodeMonitor(cfg.tracking.tracking_uri or "", run_id, short_node_id(node), every, retry).start()


def train_fn_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    cfg: Config = from_dict(Config, config["cfg"], origin="train_loop_config")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    def adapt(model: torch.nn.Module) -> None:
        # Gradients are averaged by the steps, overlapping backward (train/distributed.py), not by a DDP wrapper.
        if world > 1 and family_of(model) is Family.CONTRASTIVE:
            model.encoder.key_gather = all_gather_cat  # one MoCo queue across ranks, as with DDP + gathered keys

    # The stream starts first: its start-up (new processes importing their modules) overlaps the set-up below.
    shard = ray.train.get_dataset_shard("train")
    batches = task_batches(
        shard, cfg.data.tasks_per_step, device, cfg.data.prefetch_batches, degrade_on=cfg.scaling.degrade_on,
        actors=config["actors"], consumers=world, start_now=True,
    )  # fmt: skip
    saved = _read(config["resume"], config["resume_step"])
    trainer = build_trainer(cfg, device, rank=rank, saved=saved, adapt=adapt)
    model, step_fn = trainer.model, trainer.step
    start = int(saved.meta["step"]) if saved is not None else 0
    assert world_size() == world, "the process group Ray Train set up is missing"

    tracker = Tracker(cfg.tracking.tracking_uri or "", enabled=rank == 0, retry_after=cfg.tracking.retry_every_s)
    val_set = val_cases(cfg) if rank == 0 else []
    if rank == 0:
        params = {
            **flatten(cfg),
            "model/parameters": count_parameters(model),
            "scaling/world_size": world,
            "train/accelerated": trainer.describe(),
            **config.get("plan", {}),
        }
        tracker.start(experiment_name(cfg.model.name, cfg.tracking.experiment), cfg.name, params, config.get("tags"))
        with tempfile.TemporaryDirectory() as tmp:
            tracker.artifact(save_yaml(cfg, Path(tmp) / "config.yaml"))
    system = _system_metrics(cfg, tracker.run_id, rank, world)

    channel = config.get("progress") if rank == 0 else None  # the driver's console, when it asked for one

    def log_metrics(metrics: Metrics, step: int) -> None:
        if rank == 0:
            tracker.metrics({**metrics, **batches.metrics().logged()}, step=step)
            send(channel, Event(step, losses_of(metrics), sent=time.time()))

    def validate_(step: int) -> Metrics:
        if rank != 0:
            return {}
        values, picture = validate(step_fn.eval_model, val_set, cfg.scale, samples=2 if cfg.tracking.log_images else 0)
        tracker.metrics(values, step=step)
        if picture is not None:
            tracker.image(picture, f"samples/step_{step:07d}.png", step=step)
        log.debug("step %d: %s %.2f dB", step, VAL_METRIC, values[VAL_METRIC])  # the driver prints it
        bicubic = values.get("val/bicubic_psnr_y")
        send(channel, Event(step, {}, val_psnr=values[VAL_METRIC], bicubic_psnr=bicubic, sent=time.time()))
        return values

    def save(step: int, values: Metrics) -> None:
        _report(cfg, trainer, step, rank, {k: v for k, v in values.items() if k == VAL_METRIC})

    hooks = config.get("hooks", ())
    for hook in hooks:
        hook.begin(cfg, start, rank)
    model.train()
    run_dir = Path(cfg.train.storage_path or "") / cfg.name
    result = run_steps(
        step_fn, batches, Cadence.of(cfg), start=start, tasks_per_step=cfg.data.tasks_per_step, device=device,
        log=log_metrics, validate=validate_, save=save, hooks=hooks, rank=rank, where=str(run_dir),
    )  # fmt: skip
    if system is not None:
        system.stop()

    version = None
    if rank == 0 and result.stopped is None and cfg.tracking.register and result.step > start:
        registered = registered_name(cfg.model.name, cfg.scale)
        version = tracker.log_model(step_fn.eval_model, cfg, registered, result.val_metrics.get(VAL_METRIC))
    if rank == 0:
        tracker.end("FAILED" if result.stopped else "FINISHED")
    return {
        "run_dir": str(run_dir),
        "step": result.step,
        "metrics": {**result.metrics, **result.val_metrics},
        "model_version": version,
        "run_id": tracker.run_id,
        "tracking": tracker.summary(),
        "stopped": result.stopped,
        "resumed": start,
    }
