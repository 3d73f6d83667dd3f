"""Staged training steps: a family's schedule as a list of stages, each with its own parameters, optimiser and
loss, run in order by one step object. No Ray, no MLflow; the loop (``runner.run_steps``) sees one step function.

:meth:`StagedStep.two_stages`: ``optim.pretrain_steps`` of the first stage at ``optim.lr_pretrain``, then the second
at ``optim.lr`` on ``optim.schedule``; ``optim.pretrain_shared_optimizer`` keeps one optimiser through both.
:class:`ContrastiveStep` (CDSR, DASR), :class:`MultiCropStep` (CdCL), :class:`DistillationStep` (KDSR)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from blindsr.config import LossConfig, OptimConfig
from blindsr.losses import distillation, info_nce, l1_255
from blindsr.train.optim import main_schedule, optimizer, pretrain_schedule, shared_schedule
from blindsr.train.step import Step

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


@dataclass
class Stage:
    """One stage of a family's schedule."""

    name: str
    until: int | None  # its last iteration (1-based); None: to the end of training
    params: list[nn.Parameter]  # what it trains
    optimizer: str  # the key of the optimiser it steps (``Step.optimizers``)
    loss: LossFn  # (lr (k, m, 3, h, w), hr) → (loss, metrics)


class StagedStep(Step):
    """Runs ``self.stages`` in order: each iteration the current stage's loss, backward into its parameters, an
    update of its optimiser. ``train/stage`` logs which stage ran (0, 1, …)."""

    stages: list[Stage]

    def two_stages(
        self, first: str, first_params: list[nn.Parameter], first_loss: LossFn, params: list[nn.Parameter], loss: LossFn
    ) -> list[Stage]:
        """The optimisers and schedules of a first stage named ``first`` and a main stage (optimiser ``sr``);
        the first stage is left out when ``optim.pretrain_steps`` is 0."""
        cfg, n = self.optim_cfg, self.optim_cfg.pretrain_steps
        shared = n > 0 and cfg.pretrain_shared_optimizer
        every = list(dict.fromkeys([*first_params, *params])) if shared else params
        self.optimizers["sr"] = optimizer(every, cfg.lr, cfg)
        self.schedulers["sr"] = (shared_schedule if shared else main_schedule)(self.optimizers["sr"], cfg)
        if n > 0 and not shared:
            self.optimizers[first] = optimizer(first_params, cfg.lr_pretrain, cfg)
            self.schedulers[first] = pretrain_schedule(self.optimizers[first], cfg)
        main = Stage("main", None, params, "sr", loss)
        return [Stage(first, n, first_params, "sr" if shared else first, first_loss), main] if n > 0 else [main]

    @property
    def stage(self) -> Stage:
        """The stage of the current iteration."""
        return next(s for s in self.stages if s.until is None or self.iteration <= s.until)

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        stage = self.stage
        loss, metrics = stage.loss(lr, hr)
        self._update(loss, stage.params, stage.optimizer)
        return {**metrics, "train/stage": float(self.stages.index(stage)), **self._common_metrics()}


def crops(lr: torch.Tensor, what: str) -> torch.Tensor:
    """lr (k, m, 3, h, w) itself when m ≥ 2; else a ValueError naming the setting."""
    if lr.shape[1] < 2:
        raise ValueError(f"{what} needs at least 2 patches per task (data.patches_per_task), got {lr.shape[1]}")
    return lr


class ContrastiveStep(StagedStep):
    """CDSR / DASR: L = w_c · InfoNCE(MoCo) + w_1 · L1 on the query crop, over all trainable params.

    Each task brings m = 2 patches sharing one kernel: patch 0 is the query (also super-resolved), patch 1
    the MoCo key. The first stage (``optim.pretrain_steps``; DASR's stage 1, CDSR Table 12) trains the encoder
    alone on InfoNCE.
    """

    def __init__(self, model: nn.Module, optim_cfg: OptimConfig, loss_cfg: LossConfig, **kw: Any) -> None:
        super().__init__(model, optim_cfg, loss_cfg, **kw)
        encoder, every = trainable(model.encoder_parameters()), trainable(model.parameters())
        self.stages = self.two_stages("encoder", encoder, self.pretrain_loss, every, self.joint_loss)

    def pretrain_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        lr = crops(lr, "contrastive training (a query and a key crop)")
        logits, labels = self.forward(self.model.contrast, lr[:, 0], lr[:, 1])
        loss = info_nce(logits, labels)
        return loss, {"train/loss_contrast": loss.item()}

    def joint_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        lr = crops(lr, "contrastive training (a query and a key crop)")
        sr, logits, labels = self.forward(self.model.contrastive_forward, lr[:, 0], lr[:, 1])
        return self.sr_and_contrast(sr, hr[:, 0], logits, labels)

    def sr_and_contrast(
        self, sr: torch.Tensor, hr: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """w_1 · L1 (0–255) + w_c · cross-entropy, with the metrics of both and the contrast's top-1."""
        l1, con = l1_255(sr, hr), info_nce(logits, labels)
        loss = self.loss_cfg.weight_l1 * l1 + self.loss_cfg.weight_contrast * con
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        return loss, {
            "train/loss": loss.item(),
            "train/loss_l1": l1.item(),
            "train/loss_contrast": con.item(),
            "train/contrast_top1": accuracy,
        }


class MultiCropStep(ContrastiveStep):
    """CdCL: its encoder stage (multi-crop contrast alone), then L = w_1 · L1(SR of crop 0) + w_c · contrast.

    Each task brings m ≥ 2 crops sharing one degradation (the official trainer: 4); crop 0 is super-resolved.
    """

    def pretrain_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits, labels = self.forward(self.model.multicrop_contrast, crops(lr, "CdCL's multi-crop contrast"))
        loss = info_nce(logits, labels)
        return loss, {"train/loss_contrast": loss.item()}

    def joint_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        sr, logits, labels = self.forward(self.model.multicrop_forward, crops(lr, "CdCL's multi-crop contrast"))
        return self.sr_and_contrast(sr, hr[:, 0], logits, labels)


class DistillationStep(StagedStep):
    """KDSR: the teacher stage, L = w_1 · L1 of the SR the teacher's representation conditions (teacher encoder and
    generator train); then the student stage, L = w_1 · L1 + w_kd · 255 · KL(IDR_T ‖ IDR_S) at ``loss.kd_temperature``
    (or the L1 of the IDRs: ``loss.kd_distance``; student encoder and generator train; the teacher is frozen). The
    generator carries over, as the official student stage starts from the teacher's checkpoint; 255 keeps the paper's
    balance of L1 on [0, 1] against L_KD. Every patch of the k tasks is a sample (the official batch: one crop per
    image).
    """

    def __init__(self, model: nn.Module, optim_cfg: OptimConfig, loss_cfg: LossConfig, **kw: Any) -> None:
        super().__init__(model, optim_cfg, loss_cfg, **kw)
        teacher, student = trainable(model.teacher_parameters()), trainable(model.student_parameters())
        self.stages = self.two_stages("teacher", teacher, self.teacher_loss, student, self.student_loss)

    def teacher_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        lr, hr = lr.flatten(0, 1), hr.flatten(0, 1)
        sr, _ = self.forward(self.model.teacher_forward, lr, hr)
        l1 = l1_255(sr, hr)
        return self.loss_cfg.weight_l1 * l1, {"train/loss_l1": l1.item()}

    def student_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        lr, hr = lr.flatten(0, 1), hr.flatten(0, 1)
        with torch.no_grad():
            target = self.forward(self.model.teacher_idr, lr, hr)
        sr, idr = self.forward(self.model.student_forward, lr)
        l1, kd = l1_255(sr, hr), distillation(idr, target, self.loss_cfg.kd_temperature, self.loss_cfg.kd_distance)
        loss = self.loss_cfg.weight_l1 * l1 + self.loss_cfg.weight_kd * 255.0 * kd
        return loss, {"train/loss": loss.item(), "train/loss_l1": l1.item(), "train/loss_kd": kd.item()}
