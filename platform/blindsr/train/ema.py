"""An exponential moving average of a model's weights (``train.ema_decay``). No Ray, no MLflow.

After every training step ``θ_ema ← d·θ_ema + (1 − d)·θ`` for each parameter; buffers (BatchNorm running
statistics, the MoCo queue and its pointer) are copied, since they are running statistics already. The
average starts from the initial weights, as in BasicSR's ``net_g_ema`` and timm's ``ModelEmaV2``. When on,
validation, the registered model and every evaluation use :attr:`EMA.module`; the training step keeps
optimising the live model. The EMA weights are checkpointed as their own safetensors file
(``train.checkpoint``) so a resume continues the same average bit for bit.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """The averaged copy of ``model`` (same class, eval mode, no gradients) and how many updates it has had."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1) for an EMA, got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimisation step)."""
        ema_params, params = list(self.module.parameters()), list(model.parameters())
        if len(ema_params) != len(params):
            raise ValueError(f"EMA of a {type(self.module).__name__} updated from a {type(model).__name__}")
        torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1.0 - self.decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates += 1

    def to(self, device: torch.device | str) -> EMA:
        self.module.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged model's state_dict (what ``checkpoint.save_weights`` writes)."""
        return self.module.state_dict()

    def load_state_dict(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(weights)
        self.updates = updates
