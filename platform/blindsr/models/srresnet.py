"""SRResNet BaseNet of CMDSR (no BN, equalized-lr convs), optionally modulated per sample.

Public contract: [0, 1] RGB LR (B, 3, h, w) → [0, 1] RGB SR (B, 3, s·h, s·w). The paper trains on the
0–255 scale, so the network scales by 255 inside itself (no mean shift, no output clamp).
"""

from __future__ import annotations

import torch
from torch import nn

from blindsr.models.equalized import EqualConv2d
from blindsr.models.modulation import Modulation, run


class ResBlock(nn.Module):
    """conv → ReLU → conv, plus identity. Both convs are modulatable (indices 2i and 2i + 1 of the BaseNet)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(n_feats, n_feats)
        self.conv2 = EqualConv2d(n_feats, n_feats)

    def forward(self, x: torch.Tensor, modulation: Modulation | None = None, index: int = 0) -> torch.Tensor:
        h = torch.relu(run(self.conv1, x, modulation, index))
        return x + run(self.conv2, h, modulation, index + 1)


def upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """×2/×4: [conv → PixelShuffle(2)] per factor 2; ×3: conv → PixelShuffle(3). No activation."""
    if scale in (2, 4):
        layers: list[nn.Module] = []
        for _ in range(scale // 2):
            layers += [EqualConv2d(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        return nn.Sequential(*layers)
    if scale == 3:
        return nn.Sequential(EqualConv2d(n_feats, 9 * n_feats), nn.PixelShuffle(3))
    raise ValueError(f"SRResNet supports scales 2, 3, 4; got {scale}")


class SRResNet(nn.Module):
    """head conv → n_blocks ResBlocks → + head (global skip) → upsampler → tail conv.

    The 2·n_blocks ResBlock convs are modulatable (CMDSR); the head, upsampler and tail are not. Without a
    modulation it is the plain SRResNet-10/16 of CMDSR Table IV.
    """

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 10) -> None:
        super().__init__()
        self.scale, self.n_feats, self.n_blocks = scale, n_feats, n_blocks
        self.head = EqualConv2d(3, n_feats)
        self.blocks = nn.ModuleList(ResBlock(n_feats) for _ in range(n_blocks))
        self.up = upsampler(n_feats, scale)
        self.tail = EqualConv2d(n_feats, 3)

    def modulated_channels(self) -> list[int]:
        return [self.n_feats] * (2 * self.n_blocks)

    def forward(self, lr: torch.Tensor, modulation: Modulation | None = None) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1] → SR (B, 3, s·h, s·w) in [0, 1] (not clamped)."""
        head = self.head(lr * 255.0)
        x = head
        for i, block in enumerate(self.blocks):
            x = block(x, modulation, 2 * i)
        return self.tail(self.up(x + head)) / 255.0
