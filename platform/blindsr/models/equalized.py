"""Equalized-learning-rate layers (StyleGAN2 style), as CMDSR's official BaseNet and FC layers use.

Weights are stored as N(0, 1) and multiplied by 1/sqrt(fan_in) at run time, so Adam's effective step in
real-weight units is lr/sqrt(fan_in); keeping the parameterisation keeps the papers' learning rates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.modconv import modulated_conv2d


class EqualConv2d(nn.Module):
    """3×3 (by default) convolution with run-time weight scaling 1/sqrt(in·k·k); bias starts at 0."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding

    def scaled_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.scaled_weight(), self.bias, padding=self.padding)

    def modulated(self, x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W); scales: (B, C_in) → (B, C_out, H, W), one batched convolution."""
        return modulated_conv2d(x, self.scaled_weight(), self.bias, scales, self.padding)


class EqualLinear(nn.Module):
    """Linear layer with run-time weight scaling 1/sqrt(in); bias initialised to ``bias_init``."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)
