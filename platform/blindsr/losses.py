"""Losses: L1 on the 0–255 scale, CMDSR's task-contrastive loss, MoCo's InfoNCE, KDSR's distillation. Pure torch."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

ContrastiveForm = Literal["elementwise", "squared_distance"]


def l1_255(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on the 0–255 scale (both papers' reconstruction loss); inputs in [0, 1]."""
    return F.l1_loss(sr, hr) * 255.0


def derangement(k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random permutation of range(k) with no fixed point (rejection sampling, as the official
    CMDSR code pairs each task with another task). Needs k >= 2."""
    if k < 2:
        raise ValueError(f"the cross-task term needs at least 2 tasks per step, got {k}")
    while True:
        perm = torch.randperm(k, generator=generator)
        if not bool((perm == torch.arange(k)).any()):
            return perm


def task_contrastive(
    f1: torch.Tensor,
    f2: torch.Tensor,
    perm: torch.Tensor,
    form: ContrastiveForm = "elementwise",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CMDSR's L_con = ln(1 + e^{−L_cross}) + ln(1 + e^{L_inner}) (Eq. 6–8), written with softplus.

    f1, f2: (k, D) ConditionNet features of two disjoint support sets of the same k tasks; ``perm`` pairs
    task i's f1 with task perm[i]'s f2 for the cross-task term.

    - ``elementwise`` (the official code): per-element squared differences d² = (f1 − f2 + 1e-6)², loss
      averaged over all k·D elements (floor ln 2).
    - ``squared_distance`` (the paper's Eq. 6–7): L = ‖f1 − f2‖² summed over D per task, averaged over tasks.

    Returns (loss, mean inner distance, mean cross distance) with distances as the official code logs them
    (mean |difference| for ``elementwise``, mean Euclidean distance for ``squared_distance``).
    """
    inner, cross = f1 - f2 + 1e-6, f1 - f2[perm] + 1e-6
    if form == "elementwise":
        loss = (F.softplus(inner.square()) + F.softplus(-cross.square())).mean()
        return loss, inner.abs().mean().detach(), cross.abs().mean().detach()
    if form == "squared_distance":
        l_inner, l_cross = inner.square().sum(dim=1), cross.square().sum(dim=1)
        loss = (F.softplus(l_inner) + F.softplus(-l_cross)).mean()
        return loss, l_inner.sqrt().mean().detach(), l_cross.sqrt().mean().detach()
    raise ValueError(f"unknown contrastive form {form!r}; valid: elementwise, squared_distance")


def info_nce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MoCo's InfoNCE: cross-entropy over [positive | queue negatives] logits (B, 1 + K), labels (B,)."""
    return F.cross_entropy(logits, labels)


def distillation(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, distance: str = "kl"
) -> torch.Tensor:
    """KDSR's L_KD: KL(softmax(teacher / T) ‖ softmax(student / T)) over the D features of each row, summed and
    averaged over the B rows; ``distance="l1"``: the mean |student − teacher| (the official trainer's other
    distance, ``distill_abs``). student, teacher: (B, D) representations; the teacher's carries no gradient."""
    if distance == "l1":
        return F.l1_loss(student, teacher.detach())
    if distance != "kl":
        raise ValueError(f"unknown distillation distance {distance!r}; valid: kl, l1")
    target = F.softmax(teacher.detach() / temperature, dim=1)
    return F.kl_div(F.log_softmax(student / temperature, dim=1), target, reduction="batchmean")
