"""EDSR (Lim et al., CVPRW 2017), the large model of CMDSR Table X: 32 blocks × 256 features, residual
scaling 0.1, DIV2K mean shift; 43,089,923 parameters at ×4 (Table X: 43M). Block convs are modulatable.
"""

from __future__ import annotations

import torch
from torch import nn

from blindsr.models.modconv import ModConv2d
from blindsr.models.modulation import Modulation, run

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class EDSRBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = ModConv2d(n_feats, n_feats, 3, padding=1)
        self.conv2 = ModConv2d(n_feats, n_feats, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor, modulation: Modulation | None = None, index: int = 0) -> torch.Tensor:
        h = run(self.conv2, torch.relu(run(self.conv1, x, modulation, index)), modulation, index + 1)
        return x + self.res_scale * h


def edsr_upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """EDSR upsampler: [conv n→4n, PixelShuffle(2)] per factor 2, or conv n→9n, PixelShuffle(3)."""
    if scale in (2, 4):
        layers: list[nn.Module] = []
        for _ in range(scale // 2):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
        return nn.Sequential(*layers)
    if scale == 3:
        return nn.Sequential(nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1), nn.PixelShuffle(3))
    raise ValueError(f"the EDSR upsampler supports scales 2, 3, 4; got {scale}")


class EDSR(nn.Module):
    """[0, 1] LR (B, 3, h, w) → [0, 1] SR (B, 3, s·h, s·w); 0–255 inside with the DIV2K mean subtracted."""

    def __init__(self, scale: int = 4, n_feats: int = 256, n_blocks: int = 32, res_scale: float = 0.1) -> None:
        super().__init__()
        self.n_feats, self.n_blocks = n_feats, n_blocks
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList(EDSRBlock(n_feats, res_scale) for _ in range(n_blocks))
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.up = edsr_upsampler(n_feats, scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def modulated_channels(self) -> list[int]:
        return [self.n_feats] * (2 * self.n_blocks)

    def forward(self, lr: torch.Tensor, modulation: Modulation | None = None) -> torch.Tensor:
        head = self.head(lr * 255.0 - self.mean)
        x = head
        for i, block in enumerate(self.blocks):
            x = block(x, modulation, 2 * i)
        return (self.tail(self.up(self.body_tail(x) + head)) + self.mean) / 255.0
