"""How a per-sample degradation vector d (B, C) enters SR features x (B, C, H, W).

:class:`DAConv` (DASR's DA_conv: a per-sample depthwise 3×3 kernel and channel attention from d), :class:`DQA`
(CDSR's Domain Query Attention: the kernel predicted from γ·CrossModalAttention(x̄, d) + d), :class:`AdaIN` (CDSR
Table 5's alternative) and ``"dynconv"`` (DQA without the attention). :class:`FuseBLK` is DASR's DAB with one of
them in its two slots. Parameter counts: ``spec/cdsr.md``, ``spec/cmdsr_dasr_basicsr.md`` §2.3."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Fusion = Literal["dqa", "dynconv", "adain", "daconv"]


def dynamic_depthwise_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """x: (B, C, H, W); kernels: (B, C, k, k), one depthwise kernel per sample and channel → (B, C, H, W).

    One grouped convolution over the batch folded into channels (groups = B·C), zero padding k // 2.
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k), padding=k // 2, groups=b * c)
    return out.view(b, c, h, w)


class DAConv(nn.Module):
    """DASR's DA_conv: dynamic depthwise branch on a kernel code + channel attention from d.

    Dynamic branch: code (B, C) → Linear C→C (no bias) → LReLU(0.1) → Linear C→C·k² (no bias) → depthwise
    conv of x → LReLU(0.1) → 1×1 conv C→C. CA branch: x · Sigmoid(1×1 C→C/r → LReLU(0.1) → 1×1 C/r→C)(d),
    both 1×1 convs without bias. Output = dynamic + CA (no residual).
    """

    def __init__(self, n_feats: int = 64, reduction: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.kernel = nn.Sequential(
            nn.Linear(n_feats, n_feats, bias=False),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(n_feats, n_feats * kernel_size * kernel_size, bias=False),
        )
        self.conv = nn.Conv2d(n_feats, n_feats, 1)
        self.ca = nn.Sequential(
            nn.Conv2d(n_feats, n_feats // reduction, 1, bias=False),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(n_feats // reduction, n_feats, 1, bias=False),
            nn.Sigmoid(),
        )

    def dynamic(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); code: (B, C) → (B, C, H, W)."""
        b, c = code.shape
        kernels = self.kernel(code).view(b, c, self.kernel_size, self.kernel_size)
        return self.conv(F.leaky_relu(dynamic_depthwise_conv(x, kernels), 0.1))

    def channel_attention(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → x scaled by a per-sample channel gate (B, C, 1, 1) in (0, 1)."""
        return x * self.ca(d[:, :, None, None])

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        return self.dynamic(x, d) + self.channel_attention(x, d)


class CrossModalAttention(nn.Module):
    """Channel-to-channel attention: query from the spatial mean of x, key and value from d.

    q = Linear(mean_hw x), k = Linear(d), v = Linear(d), all (B, C); out_i = Σ_j softmax_j(q_i·k_j)·v_j
    (a C×C energy per sample, no scaling); returns γ·out + d with a learnable scalar γ initialised to 0.
    """

    def __init__(self, n_feats: int = 64) -> None:
        super().__init__()
        self.query = nn.Linear(n_feats, n_feats)
        self.key = nn.Linear(n_feats, n_feats)
        self.value = nn.Linear(n_feats, n_feats)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → z (B, C)."""
        q, k, v = self.query(x.mean(dim=(2, 3))), self.key(d), self.value(d)
        attention = torch.softmax(q[:, :, None] * k[:, None, :], dim=-1)  # (B, C_query, C_key)
        return self.gamma * torch.bmm(attention, v[:, :, None]).squeeze(-1) + d


class DQA(DAConv):
    """CDSR's Domain Query Attention: the kernel is predicted from the attended z, the CA gate from d."""

    def __init__(self, n_feats: int = 64, reduction: int = 2) -> None:
        super().__init__(n_feats, reduction)
        self.attention = CrossModalAttention(n_feats)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        return self.dynamic(x, self.attention(x, d)) + self.channel_attention(x, d)


class AdaIN(nn.Module):
    """Adaptive instance normalisation from d: (1 + scale(d)) · IN(x) + bias(d).

    scale, bias = split(Linear C→C → LReLU(0.1) → Linear C→2C (d)). ``instance_norm=False`` gives the plain
    affine modulation (1 + scale)·x + bias that the CDSR paper's prose describes for its AdaIN row.
    """

    def __init__(self, n_feats: int = 64, instance_norm: bool = True) -> None:
        super().__init__()
        self.instance_norm = instance_norm
        self.mlp = nn.Sequential(
            nn.Linear(n_feats, n_feats), nn.LeakyReLU(0.1, inplace=True), nn.Linear(n_feats, 2 * n_feats)
        )

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        scale, bias = self.mlp(d)[:, :, None, None].chunk(2, dim=1)
        if self.instance_norm:
            x = F.instance_norm(x)
        return (1 + scale) * x + bias


def fusion_module(fusion: Fusion, n_feats: int = 64) -> nn.Module:
    """The module that conditions features on d: dqa | dynconv (reduction 2) | adain | daconv (DASR, 8)."""
    if fusion == "dqa":
        return DQA(n_feats, reduction=2)
    if fusion == "dynconv":
        return DAConv(n_feats, reduction=2)
    if fusion == "daconv":
        return DAConv(n_feats, reduction=8)
    if fusion == "adain":
        return AdaIN(n_feats)
    raise ValueError(f"unknown fusion {fusion!r}; valid: dqa, dynconv, adain, daconv")


class FuseBLK(nn.Module):
    """DASR's DAB with a switchable fusion module in both slots (CDSR's FuseBLK when ``fusion="dqa"``).

    h = LReLU(slot1(x, d)); h = LReLU(conv3×3(h)); h = LReLU(slot2(h, d)); out = conv3×3(h) + x.
    """

    def __init__(self, n_feats: int = 64, fusion: Fusion = "dqa") -> None:
        super().__init__()
        self.da_conv1 = fusion_module(fusion, n_feats)
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.da_conv2 = fusion_module(fusion, n_feats)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); d: (B, C) → (B, C, H, W)."""
        h = F.leaky_relu(self.da_conv1(x, d), 0.1)
        h = F.leaky_relu(self.conv1(h), 0.1)
        h = F.leaky_relu(self.da_conv2(h, d), 0.1)
        return self.conv2(h) + x
