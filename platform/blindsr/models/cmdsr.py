"""CMDSR (Yin et al., TIP 2022): a ConditionNet reads a task's n support patches and emits per-conv
channel scales that modulate the SRResNet BaseNet (conditional hyper-network).

Structure and parameter counts follow the official code (``spec/cmdsr_dasr_basicsr.md`` §1.1–1.4, 1.9):
BaseNet 1,037,507; 20 FC modulations 165,120; ConditionNet 292,992 at n = 20; total 1,495,619.
The BaseNet is pluggable (SRResNet, VDSR, IDN, EDSR; Table X) and so is the modulation (Table IX).
"""

from __future__ import annotations

import torch
from torch import nn

from blindsr.models.family import Family
from blindsr.models.modulation import MODULATIONS

CONDITION_DIM = 128
SELF_SUPPORT_PATCH = 32  # official test support: hr_crop_size 128 // scale 4


class ConditionNet(nn.Module):
    """n support patches stacked on channels (patch-major RGB, 3n channels, 0–255) → (T, 128) feature.

    conv 3n→64, ReLU, conv 64→64, ReLU, avg-pool 2, conv 64→128, ReLU, conv 128→128, ReLU, global mean.
    """

    def __init__(self, support_size: int = 20, width: int = 64) -> None:
        super().__init__()
        self.support_size = support_size
        self.body = nn.Sequential(
            nn.Conv2d(3 * support_size, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, CONDITION_DIM, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # official init: kaiming-normal (fan_in) × 0.1, bias 0
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    def forward(self, support: torch.Tensor) -> torch.Tensor:
        """support: (T, n, 3, h, w) in [0, 1] → (T, 128). A true global mean (also for non-square h, w)."""
        t, n, c, h, w = support.shape
        if n != self.support_size:
            raise ValueError(f"ConditionNet was built for n = {self.support_size} support patches, got {n}")
        return self.body(support.reshape(t, n * c, h, w) * 255.0).mean(dim=(2, 3))


class CMDSR(nn.Module):
    """ConditionNet + a modulation (channel scaling or SFT) + any BaseNet with ``modulated_channels()``.

    With the default SRResNet-10 BaseNet and channel scaling this is the paper's model: 2·n_blocks
    EqualLinear(128 → 64, bias 1) heads. The modulation belongs to the BaseNet side (``base_parameters``),
    as in the official code, where the BaseNet optimiser updates the heads; ``condition_parameters`` is
    the ConditionNet alone.
    """

    family = Family.CONDITIONAL

    def __init__(self, base: nn.Module, support_size: int = 20, modulation: str = "scale") -> None:
        super().__init__()
        if modulation not in MODULATIONS:
            raise ValueError(f"unknown modulation {modulation!r}; valid: {', '.join(MODULATIONS)}")
        self.base = base
        self.condition_net = ConditionNet(support_size)
        self.modulation = MODULATIONS[modulation](CONDITION_DIM, base.modulated_channels())

    @property
    def support_size(self) -> int:
        return self.condition_net.support_size

    def condition(self, support: torch.Tensor) -> torch.Tensor:
        """(T, n, 3, h', w') support in [0, 1] → (T, 128) conditional feature."""
        return self.condition_net(support)

    def forward(self, lr: torch.Tensor, support: torch.Tensor | None = None) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1], grouped by task (B = T·q, task-major); support: (T, n, 3, h', w'),
        a precomputed condition (T, 128), or None for self-support (each image is its own task and its
        support is n seeded 32×32 crops of itself, the official test protocol). Returns SR (B, 3, s·h, s·w)."""
        if support is None:
            support = self_support(lr, self.support_size, SELF_SUPPORT_PATCH, torch.Generator().manual_seed(0))
        condition = support if support.dim() == 2 else self.condition_net(support)
        t, b = condition.shape[0], lr.shape[0]
        if b % t:
            raise ValueError(f"{b} query patches cannot be split evenly over {t} tasks")
        return self.base(lr, self.modulation.bind(condition, b // t))

    def base_parameters(self) -> list[nn.Parameter]:
        return [*self.base.parameters(), *self.modulation.parameters()]

    def condition_parameters(self) -> list[nn.Parameter]:
        return list(self.condition_net.parameters())


def self_support(lr: torch.Tensor, n: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Test-time support: n random size×size crops of each LR image itself. lr: (B, 3, h, w) → (B, n, 3, size, size)."""
    b, _, h, w = lr.shape
    size = min(size, h, w)
    tops = torch.randint(0, h - size + 1, (b, n), generator=generator)
    lefts = torch.randint(0, w - size + 1, (b, n), generator=generator)
    crops = [
        torch.stack(
            [lr[i, :, t : t + size, l : l + size] for t, l in zip(tops[i].tolist(), lefts[i].tolist(), strict=True)]
        )
        for i in range(b)
    ]
    return torch.stack(crops)


__all__ = ["CMDSR", "ConditionNet", "self_support"]
