"""Optimisers and learning-rate schedules built from ``OptimConfig``: Adam or AdamW; after the first stage, the
papers' multi-step decay or a warm-up + cosine (CdCL); in the first stage of a two-stage family, ``lr_pretrain``
decayed by ``pretrain_gamma`` at ``pretrain_milestones``. Counters are the calls to the scheduler's ``step()``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from blindsr.config import OptimConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def optimizer(params: Iterable[nn.Parameter], lr: float, cfg: OptimConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` (Adam or AdamW) over the trainable ``params`` at ``lr``."""
    params = [p for p in params if p.requires_grad]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def main_factor(cfg: OptimConfig, t: int) -> float:
    """The lr factor (of ``cfg.lr``) ``t`` updates into the main stage."""
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(t >= m for m in cfg.milestones)
    if t < cfg.warmup_steps:
        return (t + 1) / cfg.warmup_steps
    progress = min(1.0, (t - cfg.warmup_steps + 1) / cfg.cosine_steps)
    return (cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress)) / 2) / cfg.lr


def pretrain_factor(cfg: OptimConfig, t: int) -> float:
    """The lr factor (of ``cfg.lr_pretrain``) ``t`` updates into the first stage."""
    return cfg.pretrain_gamma ** sum(t >= m for m in cfg.pretrain_milestones)


def main_schedule(opt: torch.optim.Optimizer, cfg: OptimConfig) -> Scheduler:
    """``cfg.schedule`` from the optimiser's first update (MultiStepLR for ``multistep``, as before stages)."""
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: main_factor(cfg, t))


def pretrain_schedule(opt: torch.optim.Optimizer, cfg: OptimConfig) -> Scheduler:
    """The first stage's own optimiser: ``lr_pretrain`` × ``pretrain_factor``."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: pretrain_factor(cfg, t))


def shared_schedule(opt: torch.optim.Optimizer, cfg: OptimConfig) -> Scheduler:
    """One optimiser (base lr ``cfg.lr``) through both stages: the first stage's lr, then the main schedule
    counted from the second stage's start."""

    def factor(t: int) -> float:
        if t < cfg.pretrain_steps:
            return cfg.lr_pretrain / cfg.lr * pretrain_factor(cfg, t)
        return main_factor(cfg, t - cfg.pretrain_steps)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
