"""Gradient averaging across data-parallel ranks, for training steps that do not fit DDP's contract.

CMDSR alternates two optimisers over different losses and CDSR/DASR run a momentum key encoder; neither
is one forward and one backward per step, which is what ``DistributedDataParallel`` expects. The steps
therefore average gradients themselves, once per optimiser update, in one flat all-reduce (the process
group is the one Ray Train sets up: gloo on CPU, NCCL on GPU). With no process group this is local only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def sync_gradients(params: Sequence[nn.Parameter], loss: torch.Tensor) -> bool:
    """Average ``params``' gradients over all ranks; True when the loss is finite on every rank.

    A missing gradient counts as zero, so every rank all-reduces the same layout. When any rank's loss is
    NaN/Inf all ranks get False and must skip the update together (otherwise they would diverge).
    """
    finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
    n = world_size()
    if n == 1:
        return bool(finite.item())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [finite.to(grads[0].device, grads[0].dtype)])
    dist.all_reduce(flat)
    flat[:-1].div_(n)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
        offset += g.numel()
    return bool(flat[-1].item() == n)


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, …) from every rank in rank order (B·world, …); ``x`` itself when alone.

    Used as MoCo's key gather so every rank enqueues the same keys and the queues stay identical."""
    n = world_size()
    if n == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(n)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
