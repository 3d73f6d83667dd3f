"""What a worker trains, built from a config: the model, its family's step, precision, EMA and acceleration,
and their round trip through a checkpoint. No Ray, no MLflow: the Ray worker (``train.worker``), the
throughput benchmark and the tests build their trainer here, in the same order.

Order matters: the EMA copies the model before ``torch.compile`` wraps it, and a checkpoint is restored
before the model is converted to channels_last or compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blindsr.artifacts import checkpoint
from blindsr.config import Config, LossConfig, OptimConfig
from blindsr.models import build_model
from blindsr.models.family import Family, family_of
from blindsr.train.acceleration import accelerate
from blindsr.train.distributed import GradientAverager
from blindsr.train.ema import EMA
from blindsr.train.precision import Precision
from blindsr.train.stages import ContrastiveStep, DistillationStep, MultiCropStep
from blindsr.train.step import CMDSRStep, SRStep, Step


def make_step(
    model: nn.Module,
    optim_cfg: OptimConfig,
    loss_cfg: LossConfig,
    generator: torch.Generator | None = None,
    *,
    precision: Precision | None = None,
    ema: EMA | None = None,
    averager: GradientAverager | None = None,
) -> Step:
    """The step that trains ``model``'s family (``models.family_of``), in ``precision``, followed by ``ema``;
    ``averager`` averages gradients over data-parallel ranks (default: bucketed, overlapping backward)."""
    family = family_of(model)
    kw: dict[str, Any] = {"precision": precision, "ema": ema, "averager": averager}
    if family is Family.CONDITIONAL:
        return CMDSRStep(model, optim_cfg, loss_cfg, generator or torch.Generator().manual_seed(0), **kw)
    steps: dict[Family, type[Step]] = {
        Family.PLAIN: SRStep,
        Family.CONTRASTIVE: ContrastiveStep,
        Family.MULTICROP: MultiCropStep,
        Family.DISTILLED: DistillationStep,
    }
    return steps[family](model, optim_cfg, loss_cfg, **kw)


@dataclass
class Trainer:
    model: nn.Module  # the live, trained model (on the device; maybe channels_last, compiled)
    step: Step  # its family's step, with the precision and the EMA
    accelerated: list[str] = field(default_factory=list)  # what acceleration did, for the run's params

    @property
    def eval_model(self) -> nn.Module:
        """What validation, the registry and evaluation use: the EMA when on."""
        return self.step.eval_model

    def describe(self) -> str:
        """``"bf16, channels_last, torch.compile(SRResNet)"``: how this trainer runs its step."""
        return ", ".join([self.step.precision.name, *self.accelerated])


def build_trainer(
    cfg: Config,
    device: torch.device | str = "cpu",
    *,
    rank: int = 0,
    saved: checkpoint.Saved | None = None,
    adapt: Callable[[nn.Module], Any] = lambda model: None,
) -> Trainer:
    """The trainer of ``cfg`` on ``device``, resumed from ``saved`` when given.

    Every rank builds identical initial weights (seeded by ``cfg.seed``) and its own task-contrastive
    generator (seeded by ``cfg.seed`` and ``rank``). ``adapt(model)`` runs on the freshly built model (the
    Ray worker uses it to join the MoCo key gather across ranks)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.scale).to(device)
    adapt(model)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(cfg.seed * 1009 + rank)
    step = make_step(model, cfg.optim, cfg.loss, generator, precision=Precision(cfg.train.precision, device), ema=ema)
    if saved is not None:
        restore(saved, model, step)
    return Trainer(model, step, accelerate(model, cfg.train, device))


def restore(saved: checkpoint.Saved, model: nn.Module, step: Step) -> None:
    """Load a checkpoint read whole by ``checkpoint.read`` into ``model`` and ``step`` (and its EMA)."""
    model.load_state_dict(saved.model)
    step.load_state_dict(saved.trainer)
    if step.ema is not None:  # an EMA switched on at this resume starts from the restored weights
        step.ema.load_state_dict(saved.ema or saved.model, int(saved.trainer.get("ema_updates", 0)))


def save(folder: str | Path, cfg: Config, trainer: Trainer, meta: dict[str, Any]) -> Path:
    """A checkpoint of ``trainer`` (weights, EMA weights, step state) with ``meta`` (at least ``step``)."""
    ema = trainer.step.ema.module if trainer.step.ema is not None else None
    return checkpoint.save(folder, cfg, trainer.model, trainer.step.state_dict(), meta, ema=ema)
