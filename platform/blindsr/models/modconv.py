"""Per-sample modulated convolution (CMDSR's w' = w · f) as one batched convolution, shared by all BaseNets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def modulated_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scales: torch.Tensor, padding: int
) -> torch.Tensor:
    """Per-sample input-channel modulation w'_b = w · f_b, computed as conv(x · f_b, w).

    x: (B, C_in, H, W); weight: (C_out, C_in, k, k); bias: (C_out,) or None; scales: (B, C_in).
    Returns (B, C_out, H, W). Scaling input channel c of the weight equals scaling input channel c of x, so
    this is the paper's modulated convolution exactly (up to float rounding) as one ordinary batched conv:
    no per-sample weights and no ``groups = B``, which would fix the batch in an exported graph (ONNX) and
    run as a slow grouped conv on GPUs. The bias is shared by every sample: the official CMDSR code builds
    it with ``repeat_interleave``, which hands sample g, channel o the bias of channel ⌊(C·g + o)/B⌋ when
    B > 1; that scrambling is a documented deviation we do not reproduce.
    """
    return F.conv2d(x * scales[:, :, None, None], weight, bias, padding=padding)


class ModConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` (stride 1, groups 1) that can also run per-sample modulated."""

    def modulated(self, x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W); scales: (B, C_in) → (B, C_out, H, W)."""
        return modulated_conv2d(x, self.weight, self.bias, scales, self.padding[0])
