"""The driver side of training: ``fit(cfg)`` connects to (or starts) Ray, resolves paths, chooses the
checkpoint to resume from, builds the task stream and a ``TorchTrainer``, and restarts failed attempts.

Restarts are the driver's (Ray Train's ``max_failures=0`` per attempt): each attempt resumes from the newest whole
checkpoint with the stream started right after its step, so a restarted run trains on the same tasks as one that
never failed. An error a restart would repeat (a worker's ``ValueError``/``TypeError``) is not retried.
"""

from __future__ import annotations

import contextlib
import logging
import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs
import ray
import ray.train
from ray.train import Checkpoint, CheckpointConfig, DataConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer

from blindsr import console
from blindsr.artifacts import checkpoint
from blindsr.config import Config, ConfigError, apply_overrides, to_dict
from blindsr.data.actor import DegradeWorker
from blindsr.data.feed import stream_columns
from blindsr.data.plan import plan_resources
from blindsr.data.stream import train_dataset
from blindsr.errors import UserError
from blindsr.ray_session import ensure_ray
from blindsr.tracking import close_run, experiment_name, resolve_uri
from blindsr.train.progress import ProgressFeed
from blindsr.train.runner import LoopHook
from blindsr.train.worker import VAL_METRIC, train_fn_per_worker

log = logging.getLogger(__name__)

__all__ = [
    "VAL_METRIC",
    "NonFiniteLossError",
    "TrainOutcome",
    "ensure_ray",
    "fit",
    "resolve_devices",
    "resolve_paths",
    "use_gpu",
]


class NonFiniteLossError(UserError, RuntimeError):
    """Too many NaN/Inf losses in a row; the message names the step and the last good checkpoint, and
    ``outcome`` is the run's :class:`TrainOutcome` (what was tracked, where the checkpoints are)."""

    def __init__(self, message: str, outcome: TrainOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class WorkerError(UserError, RuntimeError):
    """A train worker raised an error a restart would raise again (a ``ValueError`` or ``TypeError``): not retried."""


def deterministic(error: BaseException) -> BaseException | None:
    """The first worker failure of ``error`` that is a ``ValueError`` or ``TypeError`` (Ray's wrapper unwrapped)."""
    for failure in getattr(error, "worker_failures", {}).values():
        cause = getattr(failure, "cause", None) or failure
        if isinstance(cause, ValueError | TypeError):
            return cause
    return None


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


def resolve_paths(cfg: Config, project_dir: str | Path | None = None) -> Config:
    """A copy of ``cfg`` with the absolute MLflow URI and storage path the workers must use (their cwd is
    temporary); ``cfg`` itself is left as validated."""
    project = Path(project_dir or Path.cwd()).resolve()
    paths = {
        "tracking.tracking_uri": resolve_uri(cfg.tracking.tracking_uri, project),
        "train.storage_path": cfg.train.storage_path or str(project / "outputs" / "ray"),
    }
    return apply_overrides(cfg, paths, origin="the resolved paths")


def use_gpu(cfg: Config) -> bool:
    if cfg.scaling.use_gpu is not None:
        return cfg.scaling.use_gpu
    return ray.cluster_resources().get("GPU", 0) >= cfg.scaling.num_workers


def resolve_devices(cfg: Config) -> Config:
    """A copy of ``cfg`` with ``scaling.use_gpu`` decided (null: GPUs when the cluster has one per worker)."""
    gpu = use_gpu(cfg)  # use_gpu=null: the cluster answers it, once
    if cfg.train.precision == "fp16" and not gpu:
        raise ConfigError(
            "train.precision: fp16 needs CUDA, and the cluster has no GPU for each train worker "
            "(scaling.use_gpu=null resolved to false): use bf16 or fp32"
        )
    return apply_overrides(cfg, {"scaling.use_gpu": gpu}, origin="the resolved devices")


def run_checkpoints(cfg: Config) -> list[Checkpoint]:
    """Every checkpoint folder of the run ``cfg.name`` on its storage (local, NFS or a pyarrow URI), newest
    first: Ray Train names them checkpoint_<timestamp>."""
    if "://" in cfg.train.storage_path:
        fs, root = pyarrow.fs.FileSystem.from_uri(cfg.train.storage_path)
    else:
        fs, root = pyarrow.fs.LocalFileSystem(), cfg.train.storage_path
    infos = fs.get_file_info(pyarrow.fs.FileSelector(posixpath.join(root, cfg.name), allow_not_found=True))
    names = [i.path for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith("checkpoint_")]
    return [Checkpoint(p, filesystem=fs) for p in sorted(names, reverse=True)]


def resume_point(cfg: Config) -> tuple[Checkpoint | None, int]:
    """The newest checkpoint of the run that reads whole, and its step; ``(None, 0)`` for a fresh run.

    A checkpoint that does not read (truncated or missing files: a worker killed while writing it) is
    skipped with a warning in favour of the previous one. With checkpoints but none readable the run stops
    rather than start over."""
    tried = []
    for ckpt in run_checkpoints(cfg):
        try:
            with ckpt.as_directory() as folder:
                step = int(checkpoint.read(folder).meta["step"])
        except checkpoint.CheckpointError as e:
            log.warning("unreadable checkpoint, falling back to the previous one: %s", e)
            tried.append(str(e))
            continue
        if tried:
            log.warning("resuming from %s (step %d) instead of the newer unreadable one(s)", ckpt.path, step)
        return ckpt, step
    if tried:
        raise checkpoint.CheckpointError("no readable checkpoint to resume from: " + "; ".join(tried))
    return None, 0


def ordered_ingest() -> DataConfig:
    """Ray Train's ingest options with ``preserve_order``: Ray Train replaces a dataset's own execution options
    with these, so the stream's task-id order (``build_dataset``) must be asked for here as well."""
    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return DataConfig(execution_options=options)


def fit(
    cfg: Config,
    project_dir: str | Path | None = None,
    *,
    callbacks: Sequence[ray.train.UserCallback] = (),
    tags: Mapping[str, str] | None = None,
    cluster: Mapping[str, float] | None = None,
    hooks: Sequence[LoopHook] = (),
    worker_cls: type[DegradeWorker] = DegradeWorker,
    progress: Callable[[console.Event], None] | None = None,
) -> TrainOutcome:
    """Train ``cfg`` on Ray (local or the connected cluster); resume when ``cfg.name`` has checkpoints.

    A Tune trial (``blindsr.tune.driver``) adds ``callbacks`` (``TuneReportCallback``), MLflow run ``tags``
    (``mlflow.parentRunId`` nests the run under the sweep's) and its ``cluster`` share for the data plan.
    ``hooks`` run inside the training loop of every worker and ``worker_cls`` makes the task rows (the
    reliability tests inject their faults through both). ``progress`` receives rank 0's progress events on
    the driver (the jobs' console display).

    Raises:
        NonFiniteLossError: too many non-finite losses in a row (the run is closed as FAILED).
        ray.train.TrainingFailedError: the last of ``1 + train.max_failures`` attempts failed.
    """
    ensure_ray()
    cfg = resolve_devices(resolve_paths(cfg, project_dir))  # copies: the caller's config stays as validated
    plan = plan_resources(cfg.scaling, ray.cluster_resources() if cluster is None else cluster)
    tasks_per_step = cfg.data.tasks_per_step * cfg.scaling.num_workers
    with ProgressFeed(progress) if progress is not None else contextlib.nullcontext() as channel:
        for attempt in range(cfg.train.max_failures + 1):
            resume, done = resume_point(cfg)
            if resume is not None:
                log.info("resuming %s from step %d (%s)", cfg.name, done, resume.path)
            dataset = train_dataset(
                cfg,
                steps=max(cfg.train.steps - done, 1),
                first_task=done * tasks_per_step,
                plan=plan,
                worker_cls=worker_cls,
                console=channel,
                columns=stream_columns(cfg.scaling.degrade_on),
            )
            trainer = TorchTrainer(
                train_fn_per_worker,
                train_loop_config={
                    "cfg": to_dict(cfg),
                    "actors": plan.max_actors,
                    "plan": plan.params(),
                    "tags": dict(tags or {}),
                    "resume": resume,
                    "resume_step": done,
                    "hooks": list(hooks),
                    "progress": channel,
                },
                scaling_config=ray.train.ScalingConfig(
                    num_workers=cfg.scaling.num_workers,
                    use_gpu=cfg.scaling.use_gpu,
                    resources_per_worker={
                        "CPU": cfg.scaling.cpus_per_worker,
                        **({"GPU": 1} if cfg.scaling.use_gpu else {}),
                    },
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
                    failure_config=FailureConfig(max_failures=0),  # restarts are this loop's (see the module doc)
                    callbacks=list(callbacks),
                ),
                datasets={"train": dataset},
                dataset_config=ordered_ingest(),
            )
            try:
                result = trainer.fit()
            except ray.train.TrainingFailedError as e:
                if cause := deterministic(e):  # a restart would raise it again
                    close_run(cfg.tracking.tracking_uri or "", experiment_name(cfg.model.name, cfg.tracking.experiment),
                              cfg.name, "FAILED")  # fmt: skip
                    raise WorkerError(f"a train worker raised {type(cause).__name__}: {cause}") from e
                if attempt == cfg.train.max_failures:
                    close_run(cfg.tracking.tracking_uri or "", experiment_name(cfg.model.name, cfg.tracking.experiment),
                              cfg.name, "FAILED")  # fmt: skip
                    raise
                log.warning(
                    "attempt %d of %s failed (%s); restarting from its last checkpoint", attempt + 1, cfg.name, e
                )
                continue
            outcome = TrainOutcome(**result.return_value, checkpoint=result.checkpoint)
            if outcome.stopped:
                raise NonFiniteLossError(outcome.stopped, outcome)
            return outcome
        raise AssertionError("unreachable")
