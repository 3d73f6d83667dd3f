"""CdCL (Yuan et al., TIP 2025): a FastMoCo-trained degradation encoder conditions a detail-aware SR network.

Follows Fieldhunter/CdCL ``model/blindsr.py`` (MIT; verbatim in ``tests/reference``), on [0, 1] with the DF2K
mean subtracted. Generator: head conv 3→C → n_groups DAGs → conv → + head → EDSR upsampler → conv C→3 → + mean.
A DAG is n_blocks DaDAUs → a ConvNeXt block → conv 3×3 → + input. The encoder's map (B, 256, ⌈h/4⌉, ⌈w/4⌉)
gives both conditions: D_channel = GELU(Linear 256→C (its spatial mean)), D_spatial = PixelShuffle(4) → conv
16→64 → GELU → conv 64→16 → GELU, cropped to h × w. Parameters at ×4, generator + estimator convs and BN (the
paper's count): CdCL-S (C 64, 6 × 6, the released code) 2,913,463; CdCL-L (C 96, 6 × 9) 5,912,201.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from blindsr.models.cdcl_encoder import FastMoCoEncoder
from blindsr.models.cdsr_encoder import DIM
from blindsr.models.edsr import edsr_upsampler
from blindsr.models.family import Family

DF2K_MEAN = (0.4680, 0.4484, 0.4029)
SPATIAL = 16  # channels of D_spatial: the 256-channel map pixel-shuffled by the encoder's stride 4


class MultiCropOutput(NamedTuple):
    sr: torch.Tensor  # (B, 3, s·h, s·w) in [0, 1], of crop 0
    logits: torch.Tensor  # (N, B): every (prediction, target) pair of different crops
    labels: torch.Tensor  # (N,) the row index: each row's target is its own degradation's


class ConvNeXtBlock(nn.Module):
    """x + γ · (Linear 2C→C ∘ GELU ∘ Linear C→2C ∘ LayerNorm ∘ depth-wise 7×7)(x), γ initialised to 1e-6."""

    def __init__(self, dim: int, expansion: int = 2, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch: (B, C, H, W) → (B, C, H, W), channels-last inside."""
        h = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        return (self.gamma * self.pwconv2(self.act(self.pwconv1(h)))).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class DegradationAdapter(nn.Module):
    """CdCL's da_conv: a channel gate from D_channel and the features' own mean, then 1×1 and depth-wise 3×3
    convs; plus the features gated per pixel by a map from D_spatial."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False), nn.GELU(), nn.Linear(dim // reduction, dim, bias=False)
        )
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 3, padding=1, groups=dim))
        self.spatial = nn.Sequential(
            nn.Conv2d(SPATIAL, SPATIAL, 3, padding=1), nn.GELU(), nn.Conv2d(SPATIAL, 1, 3, padding=1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor, d_channel: torch.Tensor, d_spatial: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d_channel: (B, C); d_spatial: (B, 16, H, W) → (B, C, H, W)."""
        gate = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(d_channel))  # one MLP for both, as the code
        return self.conv(x * gate[:, :, None, None]) + self.spatial(d_spatial) * x


class DaDAU(ConvNeXtBlock):
    """Detail-aware degradation adaptation unit: a ConvNeXt block whose branch reads GELU(adapter(x))."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.adapt = DegradationAdapter(dim)

    def forward(self, x: torch.Tensor, d_channel: torch.Tensor, d_spatial: torch.Tensor) -> torch.Tensor:
        return x + self.branch(self.act(self.adapt(x, d_channel, d_spatial)))


class DAG(nn.Module):
    """Degradation adaptation group: n_blocks DaDAUs → ConvNeXt block → conv 3×3 → + input."""

    def __init__(self, dim: int, n_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(DaDAU(dim) for _ in range(n_blocks))
        self.extra = ConvNeXtBlock(dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, d_channel: torch.Tensor, d_spatial: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block(h, d_channel, d_spatial)
        return self.conv(self.extra(h)) + x


class CdCLGenerator(nn.Module):
    """[0, 1] LR (B, 3, h, w) + encoder map (B, 256, ⌈h/4⌉, ⌈w/4⌉) → [0, 1] SR (B, 3, s·h, s·w)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_groups: int = 6, n_blocks: int = 6) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(DF2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.channel = nn.Sequential(nn.Linear(DIM, n_feats, bias=False), nn.GELU())
        self.spatial = nn.Sequential(
            nn.PixelShuffle(4),
            nn.Conv2d(SPATIAL, 64, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(64, SPATIAL, 3, padding=1),
            nn.GELU(),
        )
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.groups = nn.ModuleList(DAG(n_feats, n_blocks) for _ in range(n_groups))
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.up = edsr_upsampler(n_feats, scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def forward(self, lr: torch.Tensor, feature_map: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        d_channel = self.channel(feature_map.mean(dim=(2, 3)))
        d_spatial = self.spatial(feature_map)[..., :h, :w]  # 4·⌈h/4⌉ ≥ h: the official reflect "pad" crops
        head = self.head(lr - self.mean)
        x = head
        for group in self.groups:
            x = group(x, d_channel, d_spatial)
        return self.tail(self.up(self.body_tail(x) + head)) + self.mean


class CdCL(nn.Module):
    """CdCL: :class:`FastMoCoEncoder` (EMA momentum 0.99, temperature 1) + :class:`CdCLGenerator`.

    ``model(lr)`` → SR (the encoder reads the input itself); ``multicrop_forward(crops)`` → (SR of crop 0,
    logits, labels), the joint stage; ``multicrop_contrast(crops)`` → (logits, labels), the encoder stage.
    """

    family = Family.MULTICROP

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_groups: int = 6,
        n_blocks: int = 6,
        momentum: float = 0.99,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = FastMoCoEncoder(momentum, temperature)
        self.generator = CdCLGenerator(scale, n_feats, n_groups, n_blocks)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1] → SR (B, 3, s·h, s·w) in [0, 1]."""
        return self.generator(lr, self.encoder.feature_map(lr))

    def multicrop_forward(self, crops: torch.Tensor) -> MultiCropOutput:
        """crops: (B, m, 3, h, w), each row's m crops sharing its degradation. Loss: L1(sr, hr of crop 0) + CE."""
        logits, labels = self.encoder.contrast(crops)
        sr = self.generator(crops[:, 0], self.encoder.feature_map(crops[:, 0]))
        return MultiCropOutput(sr, logits, labels)

    def multicrop_contrast(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder stage: (logits, labels) without the generator."""
        logits, labels = self.encoder.contrast(crops)
        if self.training:  # the official encoder stage also embeds crop 0 whole: its BatchNorm statistics
            with torch.no_grad():
                self.encoder.feature_map(crops[:, 0])
        return logits, labels

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The online estimator, projector and predictor (the EMA copies are frozen)."""
        return self.encoder.online_parameters()

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())
