"""MANet's kernel estimator (Liang et al., ICCV 2021) as a degradation encoder: CDSR Table 4's "E_manet".

:class:`KernelEstimator` is the official KE net of JingyunLiang/MANet layer for layer (its weights load one-to-one):
an LR image (B, 3, h, w) in [0, 1] → a softmax-normalised 21×21 kernel per LR pixel (B, 441, h, w).
:class:`MANetFeatures` averages the kernel maps over the image (×441) and maps them by Linear 441→256 → LReLU(0.1) →
Linear 256→256 to the embedding (B, 256). How CDSR turned the estimate into an embedding is not in its paper; this
is our choice. Here the estimator learns from L1 + InfoNCE alone (no true kernels in a blind task)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _split(channels: int, parts: int) -> list[int]:
    """Channel groups as the official MAConv cuts them: round(c / n) each, the remainder in the last."""
    size = round(channels / parts)
    return [size] * (parts - 1) + [channels - size * (parts - 1)]


class MAConv(nn.Module):
    """Mutual affine convolution: (B, in_ch, H, W) → (B, out_ch, H', W').

    The input channels are cut into ``split`` groups. Group i is scaled by sigmoid(a) and shifted by b, where
    (a, b) = 1×1 conv (rest → rest // reduction) → ReLU → 1×1 conv (→ 2 × group i) of the other groups
    concatenated; then group i has a conv of its own. The groups' outputs are concatenated.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        split: int = 2,
        reduction: int = 2,
    ) -> None:
        super().__init__()
        if split < 2:
            raise ValueError(f"MAConv needs at least 2 channel groups, got split={split}")
        self.groups = _split(in_ch, split)
        rests = [in_ch - g for g in self.groups]
        self.affine = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(rest, rest // reduction, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(rest // reduction, 2 * group, 1),
            )
            for group, rest in zip(self.groups, rests, strict=True)
        )
        self.conv = nn.ModuleList(
            nn.Conv2d(group, out, kernel_size, stride, padding)
            for group, out in zip(self.groups, _split(out_ch, split), strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.split(self.groups, dim=1)
        out = []
        for i, (affine, conv) in enumerate(zip(self.affine, self.conv, strict=True)):
            scale, shift = affine(torch.cat(groups[:i] + groups[i + 1 :], dim=1)).chunk(2, dim=1)
            out.append(conv(groups[i] * torch.sigmoid(scale) + shift))
        return torch.cat(out, dim=1)


class MutualAffineBlock(nn.Module):
    """MANet's MAB: x + MAConv(ReLU(MAConv(x))), 3×3 convs. (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, split: int = 2) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            MAConv(channels, channels, split=split),
            nn.ReLU(inplace=True),
            MAConv(channels, channels, split=split),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class KernelEstimator(nn.Module):
    """MANet's kernel-estimation net: LR (B, 3, h, w) → per-pixel kernels (B, k², h, w), each summing to 1.

    A one-level U-Net of mutual affine blocks with additive skips. The input is padded (replicate, bottom and
    right) to a multiple of 8, as the official code does, and the output cropped back to h × w.
    """

    PAD = 8

    def __init__(self, kernel_size: int = 21, channels: int = 128, n_blocks: int = 1, split: int = 2) -> None:
        super().__init__()
        wide = 2 * channels
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.down = nn.Sequential(
            *(MutualAffineBlock(channels, split) for _ in range(n_blocks)),
            nn.Conv2d(channels, wide, 2, stride=2),
        )
        self.body = nn.Sequential(*(MutualAffineBlock(wide, split) for _ in range(n_blocks)))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(wide, channels, 2, stride=2),
            *(MutualAffineBlock(channels, split) for _ in range(n_blocks)),
        )
        self.tail = nn.Conv2d(channels, kernel_size**2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.PAD, 0, -h % self.PAD), mode="replicate")
        x1 = self.head(x)  # (B, C, H, W), H and W multiples of 8
        x2 = self.down(x1)  # (B, 2C, H/2, W/2)
        y = self.up(self.body(x2) + x2)  # (B, C, H, W)
        return torch.softmax(self.tail(y + x1)[..., :h, :w], dim=1)


class MANetFeatures(nn.Module):
    """:class:`KernelEstimator` → k² × the image's mean kernel → Linear k²→dim → LReLU(0.1) → Linear dim→dim.

    LR (B, 3, h, w) in [0, 1] → f (B, dim).
    """

    def __init__(self, dim: int = 256, kernel_size: int = 21, channels: int = 128, n_blocks: int = 1) -> None:
        super().__init__()
        self.estimator = KernelEstimator(kernel_size, channels, n_blocks)
        self.code = nn.Sequential(
            nn.Linear(kernel_size**2, dim),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels = self.estimator(x)  # (B, k², h, w)
        return self.code(kernels.mean(dim=(2, 3)) * kernels.shape[1])
