"""DASR (Wang et al., CVPR 2021): a MoCo-trained degradation encoder conditions a DA-group SR network.

Follows ``spec/cmdsr_dasr_basicsr.md`` §2.1–2.3. Generator, on 0–255 with the DIV2K mean subtracted: head → 5 DAGs
(5 :class:`~blindsr.models.fusion.FuseBLK` with DA_conv each) → conv → + head → upsampler → conv 64→3 → + mean.
Trainable parameters at ×4 / ×3 / ×2: 4,690,499 / 4,727,427 / 4,542,787 (the spec's counts are 24 higher: the
official frozen MeanShift convs are a 3-value buffer here)."""

from __future__ import annotations

import torch
from torch import nn

from blindsr.models.cdsr_encoder import DIM, Encoder
from blindsr.models.edsr import DIV2K_MEAN, edsr_upsampler
from blindsr.models.fusion import FuseBLK
from blindsr.models.moco import MoCoSR


class DAG(nn.Module):
    """Degradation-aware group: n_blocks DABs → conv 3×3 → + input."""

    def __init__(self, n_feats: int = 64, n_blocks: int = 5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(FuseBLK(n_feats, "daconv") for _ in range(n_blocks))
        self.conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        h = x
        for block in self.blocks:
            h = block(h, d)
        return self.conv(h) + x


class DASRGenerator(nn.Module):
    """DASR's SR network: [0, 1] LR (B, 3, h, w) + embedding (B, 256) → [0, 1] SR (B, 3, s·h, s·w)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_groups: int = 5, n_blocks: int = 5) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.compress = nn.Sequential(nn.Linear(DIM, n_feats, bias=False), nn.LeakyReLU(0.1, inplace=True))
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.groups = nn.ModuleList(DAG(n_feats, n_blocks) for _ in range(n_groups))
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.up = edsr_upsampler(n_feats, scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def forward(self, lr: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        d = self.compress(embedding)
        head = self.head(lr * 255.0 - self.mean)
        h = head
        for group in self.groups:
            h = group(h, d)
        return (self.tail(self.up(self.body_tail(h) + head)) + self.mean) / 255.0


class DASR(MoCoSR):
    """DASR: DASR's encoder in MoCo (K = 8192, m = 0.999, T = 0.07) + :class:`DASRGenerator`.

    ``model(lr)`` → SR; ``contrastive_forward(lr_q, lr_k)`` → (sr, logits, labels); ``contrast`` → (logits, labels).
    The generator reads the pre-head 256-d embedding, not detached (stage 2 trains the encoder by L1 too).
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_groups: int = 5,
        n_blocks: int = 5,
        moco_queue: int = 8192,
        moco_momentum: float = 0.999,
        moco_temperature: float = 0.07,
    ) -> None:
        super().__init__(
            Encoder("dasr", use_codebook=False, input_scale=255.0),
            DASRGenerator(scale, n_feats, n_groups, n_blocks),
            moco_queue,
            moco_momentum,
            moco_temperature,
        )
