"""MoCo (He et al., CVPR 2020) as DASR and CDSR use it, and the SR model built around it.

:class:`MoCo` wraps an encoder returning ``(embedding, projection)``: a query encoder, a momentum key encoder and a
queue of K normalised keys; logits (B, 1 + K) = [q·k⁺ | q·queue] / T, positive in column 0. No shuffle-BN. The model
never talks to torch.distributed: a distributed caller sets ``moco.key_gather`` to an all-gather of the keys (n,
dim) → (world·n, dim), so every rank enqueues the same keys and the queues stay identical."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from blindsr.models.family import Family


class MoCoOutput(NamedTuple):
    embedding: torch.Tensor  # (B, D) query-encoder embedding, with gradient (conditions the SR network)
    logits: torch.Tensor  # (B, 1 + K) [positive | queue negatives] / T
    labels: torch.Tensor  # (B,) int64 zeros: the positive is column 0


class ContrastiveOutput(NamedTuple):
    sr: torch.Tensor  # (B, 3, s·h, s·w) in [0, 1], from the query LR
    logits: torch.Tensor  # (B, 1 + K)
    labels: torch.Tensor  # (B,) zeros


class MoCo(nn.Module):
    """Query encoder + momentum key encoder + key queue (dim, K) + temperature T.

    The queue is a ring buffer: a batch of n keys is written at columns ptr, ptr+1, … modulo K, so K need
    not be a multiple of the batch (the official code asserts it is); when n > K only the newest K keys are
    kept. Key encoder and queue are excluded from the trainable parameters (requires_grad False, buffers).
    """

    def __init__(
        self,
        encoder: nn.Module,
        dim: int = 256,
        queue_size: int = 8192,
        momentum: float = 0.999,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.momentum, self.temperature = momentum, temperature
        self.key_gather: Callable[[torch.Tensor], torch.Tensor] | None = None  # set by a distributed caller
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time path: query encoder only. x: (B, 3, h, w) → embedding (B, D)."""
        return self.encoder_q(x)[0]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_k ← m·θ_k + (1 − m)·θ_q for every parameter (BatchNorm statistics are not touched)."""
        for p_k, p_q in zip(self.encoder_k.parameters(), self.encoder_q.parameters(), strict=True):
            p_k.lerp_(p_q.detach(), 1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write keys (n, dim) into the ring buffer at the pointer, wrapping around; advance the pointer."""
        size = self.queue.shape[1]
        ptr = self.queue_ptr
        if keys.shape[0] > size:  # as if all n were written one after another: the last K survive
            ptr = (ptr + keys.shape[0] - size) % size
            keys = keys[-size:]
        index = (ptr + torch.arange(keys.shape[0], device=self.queue.device)) % size
        self.queue[:, index] = keys.detach().t().to(self.queue)
        self.queue_ptr.copy_((ptr + keys.shape[0]) % size)

    def forward(self, x_q: torch.Tensor, x_k: torch.Tensor) -> MoCoOutput:
        """x_q, x_k: (B, 3, h, w) query and key (positive) inputs → :class:`MoCoOutput`.

        In training mode the key encoder gets its momentum update first, and the keys (gathered over the
        workers by ``key_gather`` when set) are enqueued after the logits are computed. In eval mode
        neither the key encoder nor the queue changes.
        """
        embedding, projection = self.encoder_q(x_q)
        q = F.normalize(projection, dim=1)
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            k = F.normalize(self.encoder_k(x_k)[1], dim=1)
        positive = (q * k).sum(dim=1, keepdim=True)
        negative = q @ self.queue.clone()  # a copy: enqueue below must not alter what backward needs
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        if self.training:
            self.enqueue(k if self.key_gather is None else self.key_gather(k))
        return MoCoOutput(embedding, logits, labels)


class MoCoSR(nn.Module):
    """An SR generator conditioned on the embedding of a MoCo-trained degradation encoder (DASR, CDSR).

    ``generator(lr, embedding)`` maps [0, 1] LR (B, 3, h, w) and (B, D) to [0, 1] SR (B, 3, s·h, s·w).
    ``model(lr)`` is the test-time path: the query encoder reads the input itself. Training uses
    :meth:`contrastive_forward` (joint) or :meth:`contrast` (encoder pre-training: DASR's stage 1, CDSR
    Table 12, without running the generator).
    """

    family = Family.CONTRASTIVE

    def __init__(
        self,
        encoder: nn.Module,
        generator: nn.Module,
        queue_size: int = 8192,
        momentum: float = 0.999,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.encoder = MoCo(encoder, queue_size=queue_size, momentum=momentum, temperature=temperature)
        self.generator = generator

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: (B, 3, h, w) in [0, 1] → SR (B, 3, s·h, s·w) in [0, 1]."""
        return self.generator(lr, self.encoder.embed(lr))

    def contrastive_forward(self, lr_q: torch.Tensor, lr_k: torch.Tensor) -> ContrastiveOutput:
        """lr_q, lr_k: (B, 3, h, w) in [0, 1], a positive pair per row → (sr of lr_q, logits, labels).

        Loss: L1(sr, hr_q) + CrossEntropy(logits, labels).
        """
        embedding, logits, labels = self.encoder(lr_q, lr_k)
        return ContrastiveOutput(self.generator(lr_q, embedding), logits, labels)

    def contrast(self, lr_q: torch.Tensor, lr_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder only: lr_q, lr_k (B, 3, h, w) → (logits (B, 1 + K), labels (B,))."""
        _, logits, labels = self.encoder(lr_q, lr_k)
        return logits, labels

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Trainable encoder parameters: the query encoder (features, CSC, projection head)."""
        return list(self.encoder.encoder_q.parameters())

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())
