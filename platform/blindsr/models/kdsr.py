"""KDSR (Xia et al., ICLR 2023): an implicit degradation representation (IDR) learnt by a teacher KD-IDE that sees the
HR image, distilled into a student KD-IDE that sees the LR image only; a generator of IDR-DCRBs (depth-wise 3×3
kernels per sample and channel, predicted from the compressed IDR) super-resolves with either.

Written from reading Zj-BinXia/KDSR ``KDSR-classic`` (no licence: nothing copied). The layers, the paper's parameter
counts (KDSR_S-M 5,795,075 = 5.80M) and the check against the official code: docs/architecture.md, "KDSR".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.edsr import DIV2K_MEAN, edsr_upsampler
from blindsr.models.family import Family
from blindsr.models.fusion import dynamic_depthwise_conv


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class ResBlock(nn.Module):
    """conv 3×3 → LReLU → conv 3×3, + input (no normalisation, no scaling)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), lrelu(), nn.Conv2d(n_feats, n_feats, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class KDIDE(nn.Module):
    """Knowledge-distillation implicit degradation estimator: (B, in, h, w) → (d (B, C), IDR (B, 4C))."""

    def __init__(self, in_channels: int, n_feats: int = 64, n_resblocks: int = 9) -> None:
        super().__init__()
        c = n_feats
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            lrelu(),
            *(ResBlock(c) for _ in range(n_resblocks)),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            lrelu(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            lrelu(),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1),
            lrelu(),
        )
        self.idr = nn.Sequential(nn.Linear(4 * c, 4 * c), lrelu(), nn.Linear(4 * c, 4 * c), lrelu())
        self.compress = nn.Sequential(nn.Linear(4 * c, c), lrelu())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idr = self.idr(self.features(x).mean(dim=(2, 3)))
        return self.compress(idr), idr


class IDRBlock(nn.Module):
    """IDR-DCRB: a per-sample depth-wise 3×3 convolution whose kernels d predicts (IDR-DDC) → LReLU → conv 3×3, +
    input."""

    def __init__(self, n_feats: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.kernel = nn.Sequential(
            nn.Linear(n_feats, n_feats, bias=False), lrelu(), nn.Linear(n_feats, n_feats * kernel_size**2, bias=False)
        )
        self.conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        kernels = self.kernel(d).view(*d.shape, self.kernel_size, self.kernel_size)
        return self.conv(F.leaky_relu(dynamic_depthwise_conv(x, kernels), 0.1)) + x


class KDSRGenerator(nn.Module):
    """[0, 1] LR (B, 3, h, w) + d (B, C) → [0, 1] SR (B, 3, s·h, s·w)."""

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 53) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList(IDRBlock(n_feats) for _ in range(n_blocks))
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.up = edsr_upsampler(n_feats, scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def forward(self, lr: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        head = self.head(lr - self.mean)
        x = head
        for block in self.blocks:
            x = block(x, d)
        return self.tail(self.up(self.body_tail(x) + head)) + self.mean


class KDSR(nn.Module):
    """KDSR: a teacher and a student :class:`KDIDE`, one :class:`KDSRGenerator` that both condition.

    ``model(lr)`` → SR through the student (the test-time path); ``teacher_forward(lr, hr)`` and
    ``student_forward(lr)`` → (SR, IDR) for the two training stages. The teacher stays in the model (its
    IDR is the student stage's target); it is not used at test time and not counted with the paper's parameters.
    """

    family = Family.DISTILLED

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 53, n_resblocks: int = 9) -> None:
        super().__init__()
        self.scale = scale
        self.teacher = KDIDE(3 + 3 * scale * scale, n_feats, n_resblocks)
        self.student = KDIDE(3, n_feats, n_resblocks)
        self.generator = KDSRGenerator(scale, n_feats, n_blocks)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1] → SR (B, 3, s·h, s·w) in [0, 1]."""
        return self.generator(lr, self.student(lr)[0])

    def teacher_input(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """lr (B, 3, h, w), hr (B, 3, s·h, s·w) → (B, 3 + 3s², h, w): the LR and the HR's s × s pixel phases."""
        return torch.cat([lr, F.pixel_unshuffle(hr, self.scale)], dim=1)

    def teacher_forward(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (SR (B, 3, s·h, s·w) from the teacher's d, the teacher's IDR (B, 4C))."""
        d, idr = self.teacher(self.teacher_input(lr, hr))
        return self.generator(lr, d), idr

    def student_forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (SR from the student's d, the student's IDR (B, 4C))."""
        d, idr = self.student(lr)
        return self.generator(lr, d), idr

    def teacher_idr(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The distillation target (B, 4C)."""
        return self.teacher(self.teacher_input(lr, hr))[1]

    def teacher_parameters(self) -> list[nn.Parameter]:
        """What the teacher stage trains: the teacher KD-IDE and the generator."""
        return [*self.teacher.parameters(), *self.generator.parameters()]

    def student_parameters(self) -> list[nn.Parameter]:
        """What the student stage trains: the student KD-IDE and the generator (the teacher is frozen)."""
        return [*self.student.parameters(), *self.generator.parameters()]
