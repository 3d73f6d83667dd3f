"""CdCL's degradation encoder (Yuan et al., TIP 2025): DASR's six-conv estimator trained by FastMoCo, a
negative-free multi-crop contrastive scheme with a momentum (EMA) target network.

Training reads a task's m crops (B, m, 3, h, w) sharing one degradation; the online estimator's quarter-crop mixes
predict (6, B, 256) and the EMA target embeds each whole crop (B, 256); the loss is the official ``InfoNCE`` over
the batch. At test time the condition is the online estimator's feature map (B, 256, ⌈h/4⌉, ⌈w/4⌉)."""

from __future__ import annotations

import copy
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.cdsr_encoder import DIM, DASRFeatures

SPLIT = 2  # each crop is cut into SPLIT × SPLIT quarters for the online branch
MIX = 2  # quarters averaged per mix: C(4, 2) = 6 mixes per crop


def projector(dim: int = DIM) -> nn.Sequential:
    """Linear → BN → GELU → Linear → BN (FastMoCo's projection MLP, 132,608 parameters at 256)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.GELU(), nn.Linear(dim, dim), nn.BatchNorm1d(dim))


def predictor(dim: int = DIM) -> nn.Sequential:
    """Bottleneck Linear dim→dim/4 → BN → GELU → Linear dim/4→dim (33,216 parameters at 256)."""
    return nn.Sequential(nn.Linear(dim, dim // 4), nn.BatchNorm1d(dim // 4), nn.GELU(), nn.Linear(dim // 4, dim))


def quarters(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (4B, C, h/2, w/2): column-major quarters (left-top, left-bottom, right-top, right-bottom)."""
    rows, cols = x.shape[-2] // SPLIT, x.shape[-1] // SPLIT
    x = x[..., : SPLIT * rows, : SPLIT * cols]  # an odd last row or column is dropped
    return torch.cat([part for col in x.split(cols, dim=3) for part in col.split(rows, dim=2)])


class FastMoCoEncoder(nn.Module):
    """Online estimator + projector + predictor, and EMA copies of the estimator and projector (frozen)."""

    def __init__(self, momentum: float = 0.99, temperature: float = 1.0) -> None:
        super().__init__()
        self.momentum, self.temperature = momentum, temperature
        self.backbone = DASRFeatures()
        self.projector = projector()
        self.predictor = predictor()
        self.backbone_ema = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projector_ema = copy.deepcopy(self.projector).requires_grad_(False)

    def feature_map(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1] → the online estimator's map (B, 256, ⌈h/4⌉, ⌈w/4⌉)."""
        return self.backbone(lr)

    def online_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projector.parameters(), *self.predictor.parameters()]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_ema ← m·θ_ema + (1 − m)·θ for the estimator and projector weights (BatchNorm statistics untouched)."""
        online = [*self.backbone.parameters(), *self.projector.parameters()]
        ema = [*self.backbone_ema.parameters(), *self.projector_ema.parameters()]
        for p_ema, p in zip(ema, online, strict=True):
            p_ema.mul_(self.momentum).add_(p.detach(), alpha=1.0 - self.momentum)

    def predictions(self, crop: torch.Tensor) -> torch.Tensor:
        """crop: (B, 3, h, w) → normalised predictions (6, B, 256) of its quarter mixes."""
        b = crop.shape[0]
        pooled = self.backbone(quarters(crop)).mean(dim=(2, 3)).split(b)  # 4 × (B, 256)
        mixes = torch.cat([sum(group) / MIX for group in combinations(pooled, MIX)])  # (6B, 256)
        p = self.predictor(self.projector(mixes))
        return F.normalize(p, dim=1, eps=0.0).view(-1, b, p.shape[1])

    @torch.no_grad()
    def targets(self, crop: torch.Tensor) -> torch.Tensor:
        """crop: (B, 3, h, w) → normalised EMA targets (B, 256)."""
        return F.normalize(self.projector_ema(self.backbone_ema(crop).mean(dim=(2, 3))), dim=1, eps=0.0)

    def contrast(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """crops: (B, m, 3, h, w), m ≥ 2 crops per row sharing its degradation → (logits (m(m−1)·6·B, B),
        labels). In training mode the EMA networks first get their momentum update (after the online pass)."""
        b, m = crops.shape[:2]
        if m < 2:
            raise ValueError(f"CdCL's multi-crop contrast needs at least 2 crops per task, got {m}")
        if crops.shape[-2] < 2 * SPLIT or crops.shape[-1] < 2 * SPLIT:
            raise ValueError(f"CdCL's encoder cuts each crop into quarters; got crops of {tuple(crops.shape[-2:])}")
        predicted = [self.predictions(crops[:, i]) for i in range(m)]
        if self.training:
            self.momentum_update()
        targets = [self.targets(crops[:, j]) for j in range(m)]
        logits = [p @ targets[j].t() / self.temperature for i, p in enumerate(predicted) for j in range(m) if j != i]
        labels = torch.arange(b, device=crops.device).repeat(len(logits) * predicted[0].shape[0])
        return torch.cat(logits).flatten(0, 1), labels
