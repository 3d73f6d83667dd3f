"""IDN (Hui et al., CVPR 2018) as the CMDSR code base ships it (``models/IDN.py``), for CMDSR Table X.

Two feature convs, four information-distillation (enhancement + 1×1 compression) units, a 17×17
transposed-conv upsampler and a bilinear global residual; LeakyReLU(0.05). RGB: 590,915 parameters
(the paper's Table X lists 0.80M, which this architecture does not reach; see the closing notes).
The four ungrouped 3×3 convs of each unit are modulatable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.modconv import ModConv2d
from blindsr.models.modulation import Modulation, run


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.05)


class DistillationUnit(nn.Module):
    """Enhancement unit (two 3-conv stacks, the first sliced 3/4 : 1/4) + 1×1 compression, width preserved."""

    def __init__(self, n_feats: int = 64, slices: int = 4) -> None:
        super().__init__()
        if n_feats % 16:
            raise ValueError(f"IDN needs a width divisible by 16 (grouped convs of 4), got {n_feats}")
        n_diff = n_feats // 4
        self.keep = n_feats - n_feats // slices
        self.a1 = ModConv2d(n_feats, n_feats - n_diff, 3, padding=1)
        self.a2 = nn.Conv2d(n_feats - n_diff, n_feats - 2 * n_diff, 3, padding=1, groups=4)
        self.a3 = ModConv2d(n_feats - 2 * n_diff, n_feats, 3, padding=1)
        self.b1 = ModConv2d(self.keep, n_feats, 3, padding=1)
        self.b2 = nn.Conv2d(n_feats, n_feats - n_diff, 3, padding=1, groups=4)
        self.b3 = ModConv2d(n_feats - n_diff, n_feats + n_diff, 3, padding=1)
        self.compress = nn.Conv2d(n_feats + n_diff, n_feats, 1)

    def modulated_channels(self) -> list[int]:
        return [conv.in_channels for conv in (self.a1, self.a3, self.b1, self.b3)]

    def forward(self, x: torch.Tensor, modulation: Modulation | None = None, index: int = 0) -> torch.Tensor:
        h = _act(run(self.a1, x, modulation, index))
        h = _act(run(self.a3, _act(self.a2(h)), modulation, index + 1))
        kept, sliced = h[:, : self.keep], h[:, self.keep :]
        g = _act(run(self.b1, kept, modulation, index + 2))
        g = _act(run(self.b3, _act(self.b2(g)), modulation, index + 3))
        return self.compress(g + torch.cat([sliced, x], dim=1))


class IDN(nn.Module):
    """[0, 1] LR (B, 3, h, w) → [0, 1] SR (B, 3, s·h, s·w); the network works on the 0–255 scale."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_units: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(3, n_feats, 3, padding=1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.units = nn.ModuleList(DistillationUnit(n_feats) for _ in range(n_units))
        self.upsample = nn.ConvTranspose2d(n_feats, 3, 17, stride=scale, padding=8)

    def modulated_channels(self) -> list[int]:
        return [c for unit in self.units for c in unit.modulated_channels()]

    def forward(self, lr: torch.Tensor, modulation: Modulation | None = None) -> torch.Tensor:
        x255 = lr * 255.0
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        base = F.interpolate(x255, size=size, mode="bilinear", align_corners=True)
        x = _act(self.conv2(_act(self.conv1(x255))))
        for i, unit in enumerate(self.units):
            x = unit(x, modulation, 4 * i)
        return (self.upsample(x, output_size=size) + base) / 255.0
