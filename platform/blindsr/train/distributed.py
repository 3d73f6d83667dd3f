"""Gradient averaging across data-parallel ranks that overlaps the backward pass, for steps DDP cannot wrap.

CMDSR's two alternating optimisers and CDSR/DASR's non-``forward`` training methods are not what DDP wraps.
:class:`GradientAverager` does what DDP's reducer does, per optimiser update: parameters in buckets of about
``bucket_bytes``, each bucket all-reduced asynchronously once its gradients are in, launched in index order on every
rank. The process group is the one Ray Train sets up (gloo on CPU, NCCL on GPU); with none, averaging is a no-op."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket_cap_mb


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def buckets(params: Sequence[nn.Parameter], bucket_bytes: int = BUCKET_BYTES) -> list[list[nn.Parameter]]:
    """``params`` in reverse order (backward reaches the last layers first), cut into buckets of at most
    ``bucket_bytes`` (a larger parameter is a bucket of its own)."""
    out: list[list[nn.Parameter]] = []
    size = bucket_bytes
    for p in reversed(list(params)):
        nbytes = p.numel() * p.element_size()
        if not out or size + nbytes > bucket_bytes:
            out.append([])
            size = 0
        out[-1].append(p)
        size += nbytes
    return out


class _Round:
    """The buckets of one backward pass: which gradients are in, which all-reduces are in flight."""

    def __init__(self, plan: list[list[nn.Parameter]]) -> None:
        self.plan = plan
        self.index = {id(p): b for b, bucket in enumerate(plan) for p in bucket}
        self.missing = [len(bucket) for bucket in plan]
        self.launched: list[tuple[torch.Tensor, Any]] = []

    def ready(self, p: nn.Parameter) -> None:
        b = self.index.get(id(p))
        if b is None:  # a parameter this update does not step (e.g. the ConditionNet in a BaseNet update)
            return
        self.missing[b] -= 1
        while len(self.launched) < len(self.plan) and self.missing[len(self.launched)] == 0:
            self.launch()

    def launch(self) -> None:
        """All-reduce the next bucket in index order (asynchronously)."""
        bucket = self.plan[len(self.launched)]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in bucket])
        self.launched.append((flat, dist.all_reduce(flat, async_op=True)))

    def finish(self, n: int) -> None:
        """Launch what is left, wait for every bucket, and make each gradient a view of its averaged bucket."""
        while len(self.launched) < len(self.plan):
            self.launch()
        for bucket, (flat, work) in zip(self.plan, self.launched, strict=True):
            work.wait()
            flat.div_(n)
            offset = 0
            for p in bucket:
                p.grad = flat[offset : offset + p.numel()].view_as(p)
                offset += p.numel()


class GradientAverager:
    """Averages the gradients of each optimiser update over all ranks, overlapping its backward pass.

    Args:
        bucket_bytes: the size of an all-reduce bucket.
    """

    def __init__(self, bucket_bytes: int = BUCKET_BYTES) -> None:
        self.bucket_bytes = bucket_bytes
        self._plans: dict[tuple[int, ...], list[list[nn.Parameter]]] = {}
        self._hooked: set[int] = set()
        self._round: _Round | None = None

    def _hook(self, p: nn.Parameter) -> None:
        if self._round is not None:
            self._round.ready(p)

    def backward(
        self, params: Sequence[nn.Parameter], loss: torch.Tensor, backward: Callable[[torch.Tensor], None]
    ) -> bool:
        """Run ``backward(loss)`` with ``params``' gradients averaged over ranks as they arrive; True when the
        loss is finite on every rank (when any is NaN/Inf, every rank gets False and must skip the update)."""
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        n = world_size()
        if n == 1:
            backward(loss)
            return bool(finite.item())
        key = tuple(id(p) for p in params)
        if key not in self._plans:
            self._plans[key] = buckets(params, self.bucket_bytes)
            for p in params:
                if id(p) not in self._hooked:
                    p.register_post_accumulate_grad_hook(self._hook)
                    self._hooked.add(id(p))
        self._round = _Round(self._plans[key])
        try:
            backward(loss)
        finally:
            current, self._round = self._round, None
        current.finish(n)
        dist.all_reduce(finite)  # tiny; after the buckets, so every rank issues the same sequence
        return bool(finite.item() == n)


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, …) from every rank in rank order (B·world, …); ``x`` itself when alone.

    Used as MoCo's key gather so every rank enqueues the same keys and the queues stay identical."""
    n = world_size()
    if n == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(n)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
