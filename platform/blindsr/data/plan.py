"""The resource plan: how the degradation actors, the train workers, Ray Data's read tasks and concurrent sweep
trials share a cluster. Pure arithmetic on ``{"CPU": …, "GPU": …}`` (no Ray), tested without a cluster.

:func:`plan_resources` reserves the train workers' CPUs and :data:`READ_CPUS` (actors that take every CPU starve
Ray Data's read tasks forever: ray-project/ray#44687), and gives the actors what is left: their CPUs, an equal
fractional share, or with ``auto`` from 1 actor up to as many as fit. What cannot fit fails naming the settings.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blindsr.config import Config, ScalingConfig
from blindsr.data.images import list_image_files
from blindsr.data.shards import is_shard_location, list_shards
from blindsr.errors import UserError

log = logging.getLogger(__name__)

READ_CPUS = 1.0  # kept free for Ray Data's read and bookkeeping tasks
MIN_ACTOR_CPUS = 0.25  # below this a degradation actor is too slow to be worth scheduling


class DataPlanError(UserError, RuntimeError):
    """The degradation actors cannot fit next to the training workers; the message says what to change."""


@dataclass(frozen=True)
class DataPlan:
    """Resources of the degradation actor pool, derived from the cluster and the ScalingConfig."""

    actors: int  # the pool's size, or its least size when it scales
    cpus_per_actor: float
    gpus_per_actor: float
    cluster_cpus: float
    train_cpus: float
    degrade_on: str = "actor"  # scaling.degrade_on: who makes the LR (trainer: the actors only cut HR windows)
    max_actors: int = 0  # > actors: Ray Data scales the pool up to this many while the trainers wait (auto)
    auto: bool = False  # scaling.degrade_actors: auto

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_actors", max(self.max_actors, self.actors))

    @property
    def free_cpus(self) -> float:
        """CPUs left for Ray Data's read tasks once training and the most actors hold theirs (≥ READ_CPUS)."""
        return self.cluster_cpus - self.train_cpus - self.max_actors * self.cpus_per_actor

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_actor > 0 else "cpu"

    def describe(self) -> str:
        gpu = f", {self.gpus_per_actor:g} GPU" if self.gpus_per_actor else ""
        role = "degradation actor(s)" if self.degrade_on == "actor" else "crop actor(s) (LR made on the train workers)"
        count = str(self.actors)
        if self.max_actors > self.actors:
            count = f"auto {self.actors}–{self.max_actors} (Ray Data adds actors while trainers wait, up to what fits)"
        elif self.auto:
            count = f"auto {self.actors} (all that fits beside training and read tasks)"
        return (
            f"{count} {role} × {self.cpus_per_actor:g} CPU{gpu}; training {self.train_cpus:g} CPU; "
            f"{self.free_cpus:g} of {self.cluster_cpus:g} CPUs left for read tasks"
        )

    def params(self) -> dict[str, float]:
        """The plan as MLflow params: what the run was given, whatever ``scaling.degrade_actors`` said."""
        return {
            "data/actors_min": self.actors,
            "data/actors_max": self.max_actors,
            "data/actor_cpus": self.cpus_per_actor,
        }


def plan_resources(
    scaling: ScalingConfig, cluster: Mapping[str, float], reserve_train: bool = True, announce: bool = True
) -> DataPlan:
    """Size the actor pool so that read tasks always keep READ_CPUS (no #44687 deadlock).

    Args:
        scaling: worker and actor counts and shares.
        cluster: ``{"CPU": …, "GPU": …}`` this run may use (``ray.cluster_resources()`` for a whole cluster).
            Concurrent Tune trials each build their own pool: pass each trial its share (:func:`trial_share`).
        reserve_train: hold back ``num_workers × cpus_per_worker`` CPUs (and their GPUs) for TorchTrainer.
        announce: log the plan line (a check before the real plan does not).

    Raises:
        DataPlanError: the actors cannot get MIN_ACTOR_CPUS each, or their GPU fractions do not fit.
    """
    cpus, gpus = float(cluster.get("CPU", 0.0)), float(cluster.get("GPU", 0.0))
    train_cpus = scaling.num_workers * scaling.cpus_per_worker if reserve_train else 0.0
    budget = cpus - train_cpus - READ_CPUS
    per_actor = scaling.degrade_cpus_per_actor
    auto = scaling.degrade_actors == "auto"
    actors = 1 if auto else int(scaling.degrade_actors)
    most = math.floor(budget / per_actor + 1e-9) if auto else actors
    if auto and most < 1 and budget < MIN_ACTOR_CPUS:
        raise DataPlanError(
            f"scaling.degrade_actors: auto finds no CPU for a degradation actor: the cluster has {cpus:g} CPUs, "
            f"training takes {scaling.num_workers} × {scaling.cpus_per_worker:g} = {train_cpus:g} and Ray Data read "
            f"tasks keep {READ_CPUS:g}. Lower scaling.num_workers or scaling.cpus_per_worker, or give Ray more CPUs."
        )
    if auto and most < 1:
        most, per_actor = 1, math.floor(100 * budget) / 100  # one actor on what is left
    if actors * per_actor > budget:
        per_actor = math.floor(100 * budget / actors) / 100  # an equal fractional share, rounded down
        if per_actor < MIN_ACTOR_CPUS:
            fits = max(0, math.floor(budget / MIN_ACTOR_CPUS))
            raise DataPlanError(
                f"the data plane does not fit: the cluster has {cpus:g} CPUs; training takes "
                f"{scaling.num_workers} × {scaling.cpus_per_worker:g} = {train_cpus:g}, Ray Data read tasks keep "
                f"{READ_CPUS:g}, which leaves {max(budget, 0):g} for {actors} degradation actor(s) (at least "
                f"{MIN_ACTOR_CPUS:g} each). Lower scaling.degrade_actors (at most {fits} fit), scaling.num_workers "
                f"or scaling.cpus_per_worker, or start Ray with more CPUs."
            )
        log.warning(
            "%d degradation actors × %g CPU do not fit next to training and read tasks; giving each %g CPU",
            actors,
            scaling.degrade_cpus_per_actor,
            per_actor,
        )
    gpu_share = scaling.degrade_gpu_fraction
    if gpu_share > 0:
        trains_on_gpu = reserve_train and (scaling.use_gpu or (scaling.use_gpu is None and gpus >= 1))
        train_gpus = scaling.num_workers if trains_on_gpu else 0
        if auto:
            most = max(1, min(most, math.floor((gpus - train_gpus) / gpu_share + 1e-9)))
        if actors * gpu_share > gpus - train_gpus + 1e-9:
            raise DataPlanError(
                f"the degradation actors want {actors} × {gpu_share:g} GPU but the cluster has {gpus:g} GPUs, "
                f"{train_gpus} of them for training. Lower scaling.degrade_gpu_fraction or scaling.degrade_actors, "
                f"train on fewer GPUs (scaling.num_workers), or set scaling.degrade_gpu_fraction=0 to degrade on CPUs."
            )
    plan = DataPlan(actors, per_actor, gpu_share, cpus, train_cpus, scaling.degrade_on, max_actors=most, auto=auto)
    if announce:
        log.info("data plan: %s", plan.describe())
    return plan


LOCAL_MIN_CPUS = 4  # a local Ray declares at least this many: a worker, an actor and a read task each get one


def local_cluster() -> dict[str, float]:
    """What the local Ray a job starts (``train.launch.ensure_ray``) declares: plannable before it starts."""
    import torch

    return {"CPU": float(max(LOCAL_MIN_CPUS, os.cpu_count() or 1)), "GPU": float(torch.cuda.device_count())}


def preflight(source: str) -> None:
    """Fail on the driver, not in N actors, when a folder or shard location is missing or empty."""
    if source == "corpus":
        return
    if is_shard_location(source):
        list_shards(source)
    else:
        list_image_files(Path(source))


TRIAL_DRIVER_CPUS = 1.0  # each sweep trial's driver (it launches the trial's TorchTrainer)


@dataclass(frozen=True)
class TrialShare:
    concurrent: int  # max_concurrent_trials
    cluster: dict[str, float]  # what each trial's data plan may use (its driver's CPU already taken off)


def trial_cpus(cfg: Config) -> float:
    """CPUs one trial holds: its driver, its train workers, a read task, its degradation actors."""
    s = cfg.scaling
    workers = s.num_workers * s.cpus_per_worker
    actors = 1 if s.degrade_actors == "auto" else s.degrade_actors  # auto grows into what the trial's share leaves
    return TRIAL_DRIVER_CPUS + workers + READ_CPUS + actors * s.degrade_cpus_per_actor


def trial_share(cfg: Config, cluster: Mapping[str, float], trials: int, cap: int | None = None) -> TrialShare:
    """How many trials run at once and the cluster share of each; raises ``DataPlanError`` if one cannot fit."""
    s = cfg.scaling
    cpus, gpus = float(cluster.get("CPU", 0.0)), float(cluster.get("GPU", 0.0))
    limits = [trials, math.floor(cpus / trial_cpus(cfg) + 1e-9)]
    actors = 1 if s.degrade_actors == "auto" else s.degrade_actors
    gpu_need = (s.num_workers if s.use_gpu else 0) + actors * s.degrade_gpu_fraction
    if gpu_need > 0:
        limits.append(math.floor(gpus / gpu_need + 1e-9))
    if cap:
        limits.append(cap)
    n = max(1, min(limits))
    share = {"CPU": cpus / n - TRIAL_DRIVER_CPUS, "GPU": gpus / n}
    plan_resources(s, cluster=share)
    return TrialShare(n, share)
