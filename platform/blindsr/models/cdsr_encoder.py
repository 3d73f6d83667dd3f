"""Degradation encoders: CDSR's LPE + CSC (Zhou et al., ACM MM 2022), DASR's six-conv encoder, MANet's estimator.

An :class:`Encoder` maps an LR image (B, 3, h, w) in [0, 1] to ``(embedding, projection)``, both (B, 256): the
embedding conditions the SR network, the projection head's output feeds MoCo. Each reads the image on its official
code's scale (``input_scale``: CDSR and MANet [0, 1], DASR 0–255). Layer by layer: ``spec/cdsr.md`` (b) and
``spec/cmdsr_dasr_basicsr.md`` §2.1; parameter counts are pinned in ``tests/test_models_cdsr.py``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from blindsr.models.manet_encoder import MANetFeatures

DIM = 256
PATCH = 12


def block(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int | None = None) -> nn.Sequential:
    """Conv2d (bias) → BatchNorm2d → LeakyReLU(0.1); "same" padding k // 2 unless given."""
    padding = kernel_size // 2 if padding is None else padding
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.1, inplace=True),
    )


class PixelBranch(nn.Sequential):
    """LPE pixel-wise subnet El: (B, 3, h, w) → (B, 256, ⌈h/2⌉, ⌈w/2⌉); moderate receptive field."""

    def __init__(self) -> None:
        super().__init__(
            block(3, 64, 7),
            block(64, 64, 1),
            block(64, 128, 3, 2),
            block(128, 128, 1),
            block(128, 256, 7),
            block(256, 256, 1),
        )


class PatchBranch(nn.Sequential):
    """LPE patch-wise subnet Ep: (B, 3, h, w) → (B, 256, ⌊h/12⌋, ⌊w/12⌋)."""

    def __init__(self) -> None:
        super().__init__(block(3, 64, PATCH, PATCH, 0), block(64, 64, 3), block(64, 128, 3), block(128, 256, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < PATCH or w < PATCH:
            raise ValueError(
                f"the LPE patch-wise branch embeds {PATCH}×{PATCH} patches and needs an LR input of at least "
                f"{PATCH}×{PATCH} pixels, got {h}×{w}"
            )
        return super().forward(x)


class DASRFeatures(nn.Sequential):
    """DASR's degradation encoder convs: (B, 3, h, w) → (B, 256, ⌈h/4⌉, ⌈w/4⌉)."""

    def __init__(self) -> None:
        super().__init__(
            block(3, 64, 3),
            block(64, 64, 3),
            block(64, 128, 3, 2),
            block(128, 128, 3),
            block(128, 256, 3, 2),
            block(256, 256, 3),
        )


def mlp(in_dim: int, dim: int = DIM) -> nn.Sequential:
    """Linear in→dim → LReLU(0.1) → Linear dim→dim (LPE fusion, projection head, DASR's MLP head)."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.LeakyReLU(0.1, inplace=True), nn.Linear(dim, dim))


class LPE(nn.Module):
    """Lightweight Patch-based Encoder: pooled El and/or Ep features → fusion MLP → f (B, 256)."""

    def __init__(self, use_pixel_branch: bool = True, use_patch_branch: bool = True) -> None:
        super().__init__()
        if not (use_pixel_branch or use_patch_branch):
            raise ValueError("the LPE encoder needs at least one of the pixel-wise and patch-wise branches")
        self.pixel = PixelBranch() if use_pixel_branch else None
        self.patch = PatchBranch() if use_patch_branch else None
        self.fusion = mlp(DIM * (use_pixel_branch + use_patch_branch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, h, w) → f (B, 256)."""
        pooled = [branch(x).mean(dim=(2, 3)) for branch in (self.pixel, self.patch) if branch is not None]
        return self.fusion(torch.cat(pooled, dim=1))


class CodebookAttention(nn.Module):
    """CSC: f (B, D) → softmax_L(fc_q(f) · fc_k(C_b)ᵀ) · C_b (B, D), a convex mix of the raw codebook rows."""

    def __init__(self, size: int = 1024, dim: int = DIM) -> None:
        super().__init__()
        self.codebook = nn.Embedding(size, dim)
        self.fc_q = nn.Linear(dim, dim)
        self.fc_k = nn.Linear(dim, dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        codebook = self.codebook.weight  # (L, D)
        weights = torch.softmax(self.fc_q(f) @ self.fc_k(codebook).t(), dim=-1)  # (B, L)
        return weights @ codebook


class Encoder(nn.Module):
    """Feature extractor (LPE, DASR's or MANet's) → optional CSC → embedding; projection head → MoCo projection.

    ``Encoder("lpe")`` is CDSR's encoder (2,934,592 parameters); ``Encoder("dasr", use_codebook=False,
    input_scale=255.0)`` is DASR's (1,278,784); ``Encoder("manet")`` is Table 4's E_manet (2,514,617). The
    LPE branch switches are read by ``"lpe"`` only.
    """

    def __init__(
        self,
        kind: Literal["lpe", "dasr", "manet"] = "lpe",
        use_pixel_branch: bool = True,
        use_patch_branch: bool = True,
        use_codebook: bool = True,
        codebook_size: int = 1024,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_scale = input_scale
        if kind == "lpe":
            self.features: nn.Module = LPE(use_pixel_branch, use_patch_branch)
        elif kind == "dasr":
            self.features = nn.Sequential(DASRFeatures(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif kind == "manet":
            self.features = MANetFeatures(DIM)
        else:
            raise ValueError(f"unknown encoder {kind!r}; valid: lpe, dasr, manet")
        self.csc = CodebookAttention(codebook_size) if use_codebook else nn.Identity()
        self.head = mlp(DIM)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 3, h, w) in [0, 1] → (embedding (B, 256), projection (B, 256), not normalised)."""
        embedding = self.csc(self.features(x * self.input_scale if self.input_scale != 1.0 else x))
        return embedding, self.head(embedding)
