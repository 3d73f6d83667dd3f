"""VDSR (Kim et al., CVPR 2016) as the CMDSR code base ships it, for CMDSR Table X.

20 bias-free 3×3 convs of width 64 with ReLU, on the bicubic-upsampled input, plus a global residual.
RGB in and out: 667,008 parameters (Table X: 0.67M). The 18 middle convs are modulatable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.modconv import ModConv2d
from blindsr.models.modulation import Modulation, run


class VDSR(nn.Module):
    """[0, 1] LR (B, 3, h, w) → bicubic ×s → 20-layer residual CNN → [0, 1] SR (B, 3, s·h, s·w)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, depth: int = 20) -> None:
        super().__init__()
        self.scale, self.n_feats = scale, n_feats
        self.head = nn.Conv2d(3, n_feats, 3, padding=1, bias=False)
        self.body = nn.ModuleList(ModConv2d(n_feats, n_feats, 3, padding=1, bias=False) for _ in range(depth - 2))
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the official init: N(0, sqrt(2 / (k·k·C_out)))
                m.weight.data.normal_(0.0, math.sqrt(2.0 / (9 * m.out_channels)))

    def modulated_channels(self) -> list[int]:
        return [self.n_feats] * len(self.body)

    def forward(self, lr: torch.Tensor, modulation: Modulation | None = None) -> torch.Tensor:
        up = F.interpolate(lr * 255.0, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = torch.relu(self.head(up))
        for i, conv in enumerate(self.body):
            x = torch.relu(run(conv, x, modulation, i))
        return (up + self.tail(x)) / 255.0
