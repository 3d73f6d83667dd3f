"""What a model costs: trainable parameters and floating-point operations per super-resolved LR image.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over the inference path every consumer runs
(:func:`blindsr.models.inference.super_resolve`: a conditional model's self-support condition, a contrastive
model's encoder pass, then the generator on the whole image), so a table's FLOPs are those of its PSNR.
A multiply-add counts as 2 FLOPs (PyTorch's convention); papers that quote "multi-adds" report half.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from blindsr.models import count_parameters
from blindsr.models.inference import device_of, super_resolve

FLOPS_SIDE = 256  # the LR side the leaderboard quotes FLOPs at (256² LR image)


def flops_per_image(model: nn.Module, side: int = FLOPS_SIDE, seed: int = 0) -> int:
    """FLOPs of super-resolving one (1, 3, side, side) LR image with ``model`` (on its own device)."""
    lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed)).to(device_of(model))
    counter = FlopCounterMode(display=False)
    with counter:
        super_resolve(model, lr, seed=seed)
    return int(counter.get_total_flops())


def model_cost(model: nn.Module, side: int = FLOPS_SIDE) -> tuple[int, int]:
    """(trainable parameters, FLOPs per ``side``² LR image)."""
    return count_parameters(model), flops_per_image(model, side)
