"""How a condition vector adapts a BaseNet: CMDSR's depth-wise channel scaling or IKC's SFT (CMDSR Table IX).

A BaseNet lists the input widths of the convolutions it lets be modulated (``modulated_channels()``) and
calls ``modulation(i, conv, x)`` instead of ``conv(x)`` for the i-th of them. A modulation module turns a
(T, D) condition into such a callable with ``bind(condition, repeats)``, where ``repeats`` query patches
belong to each task (queries are grouped task-major). No Ray or MLflow here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from blindsr.models.equalized import EqualLinear

Modulation = Callable[[int, nn.Module, torch.Tensor], torch.Tensor]


class ChannelScaling(nn.Module):
    """CMDSR's modulation: one EqualLinear(D → C_in) per modulated conv, bias initialised to 1, no activation.

    With 20 convs of width 64 and D = 128 this is the official 20 × (128·64 + 64) = 165,120 parameters.
    """

    def __init__(self, cond_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(EqualLinear(cond_dim, c, bias_init=1.0) for c in channels)

    def scales(self, condition: torch.Tensor) -> list[torch.Tensor]:
        """(T, D) condition → one (T, C_in) scale vector per modulated conv (≈ 1 at initialisation)."""
        return [head(condition) for head in self.heads]

    def bind(self, condition: torch.Tensor, repeats: int) -> Modulation:
        scales = [s.repeat_interleave(repeats, dim=0) for s in self.scales(condition)]
        return lambda i, conv, x: conv.modulated(x, scales[i])


class SFTLayer(nn.Module):
    """IKC's Spatial Feature Transform: x · sigmoid(γ(x ⊕ c)) + β(x ⊕ c), c broadcast over H × W.

    γ and β are conv3×3(C + D → 32) → LeakyReLU(0.2) → conv3×3(32 → C), as in IKC's SFT_Layer.
    """

    def __init__(self, channels: int, cond_dim: int, hidden: int = 32) -> None:
        super().__init__()

        def branch() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels + cond_dim, hidden, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(hidden, channels, 3, padding=1),
            )

        self.mul, self.add = branch(), branch()

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); condition: (B, D) → (B, C, H, W)."""
        cat = torch.cat([x, condition[:, :, None, None].expand(-1, -1, *x.shape[-2:])], dim=1)
        return x * torch.sigmoid(self.mul(cat)) + self.add(cat)


class SFTModulation(nn.Module):
    """SFT in front of each modulated conv (CMDSR Table IX's alternative to channel scaling)."""

    def __init__(self, cond_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SFTLayer(c, cond_dim) for c in channels)

    def bind(self, condition: torch.Tensor, repeats: int) -> Modulation:
        per_query = condition.repeat_interleave(repeats, dim=0)
        return lambda i, conv, x: conv(self.layers[i](x, per_query))


MODULATIONS: dict[str, type[ChannelScaling] | type[SFTModulation]] = {"scale": ChannelScaling, "sft": SFTModulation}


def run(conv: nn.Module, x: torch.Tensor, modulation: Modulation | None, index: int) -> torch.Tensor:
    """``conv(x)``, or the modulated version of the ``index``-th modulated conv when a modulation is bound."""
    return conv(x) if modulation is None else modulation(index, conv, x)
