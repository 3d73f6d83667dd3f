"""CDSR (Zhou et al., ACM MM 2022): LPE + CSC encoder in MoCo, RRDB-SFT trunk with DQA fusion blocks.

Follows ``spec/cdsr.md`` (b). The generator works on [0, 1] images with no mean shift: compress (4 × Linear 256→256
+ PReLU) → conv_first 3→64 → n_blocks × :class:`RRDBSFT` → trunk_conv → + conv_first → conv 64→3·s² →
PixelShuffle(s). Trainable parameters at ×2: 5,241,238 / 8,237,983 / 13,232,558 for 2 / 5 / 10 blocks (the paper's
5.24M / 8.24M / 13.23M)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from blindsr.models.cdsr_encoder import DIM, Encoder
from blindsr.models.dasr import DASRGenerator
from blindsr.models.fusion import FuseBLK, Fusion
from blindsr.models.moco import MoCoSR


class ResidualDenseBlock(nn.Module):
    """ESRGAN RDB: 5 convs (gc growth, LReLU(0.2) after the first four), output conv5·0.2 + x.

    Init: Kaiming-normal (fan_in) × 0.1, biases zero. 239,808 parameters at nf 64, gc 32.
    """

    def __init__(self, n_feats: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(n_feats + i * growth, growth if i < 4 else n_feats, 3, padding=1) for i in range(5)
        )
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, nf, H, W) → (B, nf, H, W)."""
        features = [x]
        for conv in self.convs[:4]:
            features.append(self.act(conv(torch.cat(features, dim=1))))
        return self.convs[4](torch.cat(features, dim=1)) * 0.2 + x


class RRDBSFT(nn.Module):
    """RRDB-SFT block: d = Sigmoid(Linear 256→nf (PReLU (Linear 256→256 (e)))) → FuseBLK(x, d) → 3 RDBs,
    output ·0.2 + x (the fusion block sits inside the residual branch)."""

    def __init__(self, n_feats: int = 64, fusion: Fusion = "dqa") -> None:
        super().__init__()
        self.sft = nn.Sequential(nn.Linear(DIM, DIM), nn.PReLU(), nn.Linear(DIM, n_feats), nn.Sigmoid())
        self.fuse = FuseBLK(n_feats, fusion)
        self.rdbs = nn.Sequential(*(ResidualDenseBlock(n_feats, n_feats // 2) for _ in range(3)))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x: (B, nf, H, W); e: (B, 256) compressed embedding → (B, nf, H, W)."""
        return self.rdbs(self.fuse(x, self.sft(e))) * 0.2 + x


class CDSRGenerator(nn.Module):
    """CDSR's SR network: [0, 1] LR (B, 3, h, w) + embedding (B, 256) → [0, 1] SR (B, 3, s·h, s·w)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 10, fusion: Fusion = "dqa") -> None:
        super().__init__()
        self.compress = nn.Sequential(*(m for _ in range(4) for m in (nn.Linear(DIM, DIM), nn.PReLU())))
        self.conv_first = nn.Conv2d(3, n_feats, 3, padding=1)
        self.trunk = nn.ModuleList(RRDBSFT(n_feats, fusion) for _ in range(n_blocks))
        self.trunk_conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(n_feats, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, lr: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        e = self.compress(embedding)
        f0 = self.conv_first(lr)
        h = f0
        for block in self.trunk:
            h = block(h, e)
        return self.upsample(f0 + self.trunk_conv(h))


class CDSR(MoCoSR):
    """CDSR with its ablation switches (Tables 3, 4, 5, 11).

    Args:
        scale: SR factor (any integer ≥ 1 for the RRDB trunk; 2, 3, 4 for the DASR trunk).
        n_feats: trunk width (64 in the paper; RDB growth n_feats // 2).
        n_blocks: RRDB-SFT blocks (10 in the paper; Table 6 also 2 and 5). Unused by ``trunk="dasr"``.
        encoder: ``"lpe"`` (CDSR), ``"dasr"`` (DASR's six convs, Table 4 "E_dasr") or ``"manet"`` (MANet's
            kernel estimator, Table 4 "E_manet"); CSC and the projection head follow each.
        use_pixel_branch, use_patch_branch: LPE branches (Table 3 Models 4, 5); unused by the other encoders.
            The patch branch needs LR inputs of at least 12×12.
        use_codebook, codebook_size: CSC on/off (Table 3 Model 2) and its length L (Table 11).
        fusion: FuseBLK slots: ``"dqa"`` | ``"dynconv"`` (DQA without attention, Table 3 Model 3) |
            ``"adain"`` (Table 5). Unused by ``trunk="dasr"``.
        trunk: ``"rrdb"`` (CDSR) or ``"dasr"``: DASR's 5 DAG × 5 DAB generator with DA_conv (Table 4
            "SR_dasr"), fed by this encoder's embedding.
        moco_queue, moco_momentum, moco_temperature: K, m, T.
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 10,
        encoder: Literal["lpe", "dasr", "manet"] = "lpe",
        use_pixel_branch: bool = True,
        use_patch_branch: bool = True,
        use_codebook: bool = True,
        codebook_size: int = 1024,
        fusion: Fusion = "dqa",
        trunk: Literal["rrdb", "dasr"] = "rrdb",
        moco_queue: int = 8192,
        moco_momentum: float = 0.999,
        moco_temperature: float = 0.07,
    ) -> None:
        if trunk == "rrdb":
            generator: nn.Module = CDSRGenerator(scale, n_feats, n_blocks, fusion)
        elif trunk == "dasr":
            generator = DASRGenerator(scale, n_feats)
        else:
            raise ValueError(f"unknown trunk {trunk!r}; valid: rrdb, dasr")
        super().__init__(
            Encoder(encoder, use_pixel_branch, use_patch_branch, use_codebook, codebook_size),
            generator,
            moco_queue,
            moco_momentum,
            moco_temperature,
        )
