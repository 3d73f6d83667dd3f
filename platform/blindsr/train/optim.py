"""Adam + MultiStepLR, the optimiser and schedule both papers use, built from ``OptimConfig``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from blindsr.config import OptimConfig


def adam(params: Iterable[nn.Parameter], lr: float, cfg: OptimConfig) -> torch.optim.Adam:
    params = [p for p in params if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def multistep(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.MultiStepLR:
    """Decay by ``gamma`` at each of ``milestones`` (counted in calls to ``step()``)."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
