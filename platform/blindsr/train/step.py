"""One optimisation step per batch of tasks, for each model family. No Ray, no MLflow.

A batch is ``lr`` (k, m, 3, h, w) and ``hr`` (k, m, 3, s·h, s·w), float in [0, 1] on the training device: k tasks of
m patches sharing one degradation. A step object owns its optimisers and schedulers, returns slash-named metrics,
checkpoints through ``state_dict``, skips a non-finite step on all ranks, runs its forwards under its
:class:`~blindsr.train.precision.Precision` and updates the optional EMA. Multi-stage families: ``train/stages.py``;
a model's step: ``trainer.make_step``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blindsr.config import LossConfig, OptimConfig
from blindsr.losses import derangement, l1_255, task_contrastive
from blindsr.models.cmdsr import CMDSR
from blindsr.train.distributed import GradientAverager
from blindsr.train.ema import EMA
from blindsr.train.optim import main_schedule, optimizer
from blindsr.train.precision import Precision


class Step:
    """Shared bookkeeping: optimiser/scheduler state, update counters, the non-finite guard, precision, EMA."""

    def __init__(
        self,
        model: nn.Module,
        optim_cfg: OptimConfig,
        loss_cfg: LossConfig,
        precision: Precision | None = None,
        ema: EMA | None = None,
        averager: GradientAverager | None = None,
    ) -> None:
        self.model, self.optim_cfg, self.loss_cfg = model, optim_cfg, loss_cfg
        self.precision, self.ema = precision or Precision(), ema
        self.averager = averager or GradientAverager()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.iteration = 0
        self.nonfinite_total = 0
        self.nonfinite_in_a_row = 0

    def forward(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` under autocast, its floating outputs back in fp32 (for the losses)."""
        with self.precision.autocast():
            out = fn(*args)
        return self.precision.fp32(out)

    def _update(self, loss: torch.Tensor, params: list[nn.Parameter], *names: str) -> bool:
        """Backward ``loss`` into freshly zeroed gradients, averaged over ranks as backward produces them
        (``train.distributed``), and step the optimisers ``names`` (and their schedulers)."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if not self.averager.backward(params, loss, self.precision.backward):
            self.nonfinite_total += 1
            self.nonfinite_in_a_row += 1
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            return False
        self.nonfinite_in_a_row = 0
        self.precision.step([self.optimizers[name] for name in names])
        for name in names:
            self.schedulers[name].step()
        return True

    def _common_metrics(self) -> dict[str, float]:
        out = {f"train/lr_{k}": opt.param_groups[0]["lr"] for k, opt in self.optimizers.items()}
        out["train/nonfinite_steps"] = float(self.nonfinite_total)
        return out

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One iteration: the family's :meth:`train_step`, then the EMA update."""
        self.iteration += 1
        metrics = self.train_step(lr, hr)
        if self.ema is not None:
            self.ema.update(self.model)
        return metrics

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    @property
    def eval_model(self) -> nn.Module:
        """The weights to validate, register and evaluate: the EMA when on, else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        """Optimisers, schedulers, counters and the loss scale (the EMA weights go to their own file)."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "iteration": self.iteration,
            "nonfinite_total": self.nonfinite_total,
            "precision": self.precision.state_dict(),
            "ema_updates": self.ema.updates if self.ema is not None else 0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.iteration = int(state["iteration"])
        self.nonfinite_total = int(state["nonfinite_total"])
        self.precision.load_state_dict(state.get("precision", {}))


class SRStep(Step):
    """Plain SR nets (SRResNet-10/16, VDSR, IDN, EDSR): L1 on all k·m patches, one Adam update."""

    def __init__(self, model: nn.Module, optim_cfg: OptimConfig, loss_cfg: LossConfig, **kw: Any) -> None:
        super().__init__(model, optim_cfg, loss_cfg, **kw)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizers["sr"] = optimizer(self.params, optim_cfg.lr, optim_cfg)
        self.schedulers["sr"] = main_schedule(self.optimizers["sr"], optim_cfg)

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        loss = l1_255(self.forward(self.model, lr.flatten(0, 1)), hr.flatten(0, 1))
        self._update(loss, self.params, "sr")
        return {"train/loss_l1": loss.item(), **self._common_metrics()}


class CMDSRStep(Step):
    """CMDSR's alternating optimisation (Algorithm 1, as the official code runs it).

    Each task brings m = 2n patches, split into two disjoint halves of n. BaseNet (+ modulation heads)
    update on each half in turn with that half as its own support (self-support): L_res = L1. Every t0
    BaseNet updates, the ConditionNet updates with ``loss.condition_loss``: L_res | L_con | L_con + λ·L_res,
    L_con contrasting the two halves' features (inner-task) against another task's (cross-task).
    t0 = 0 trains both jointly: every update steps both optimisers on L_res (+ L_con unless ``res``).
    """

    def __init__(
        self, model: CMDSR, optim_cfg: OptimConfig, loss_cfg: LossConfig, generator: torch.Generator, **kw: Any
    ) -> None:
        super().__init__(model, optim_cfg, loss_cfg, **kw)
        self.generator = generator
        self.base_params, self.cond_params = model.base_parameters(), model.condition_parameters()
        self.optimizers["base"] = optimizer(self.base_params, optim_cfg.lr, optim_cfg)
        self.optimizers["condition"] = optimizer(self.cond_params, optim_cfg.lr_condition, optim_cfg)
        self.schedulers = {k: main_schedule(o, optim_cfg) for k, o in self.optimizers.items()}
        self.base_updates = 0

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.model.support_size
        if x.shape[1] != 2 * n:
            raise ValueError(
                f"CMDSR with support size n = {n} needs 2n = {2 * n} patches per task, got {x.shape[1]}; "
                f"set data.patches_per_task={2 * n}"
            )
        return x[:, :n], x[:, n:]

    def _contrast(self, f1: torch.Tensor, f2: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        perm = derangement(f1.shape[0], self.generator).to(f1.device)
        loss, d_in, d_cross = task_contrastive(f1, f2, perm, self.loss_cfg.contrastive_form)
        return loss, {
            "train/loss_contrast": loss.item(),
            "train/dist_inner": d_in.item(),
            "train/dist_cross": d_cross.item(),
        }

    def _condition_loss(self, res: torch.Tensor, con: torch.Tensor | None) -> torch.Tensor:
        kind = self.loss_cfg.condition_loss
        if kind == "res":
            return res
        assert con is not None
        return con if kind == "con" else con + self.loss_cfg.lambda_res * res

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        lr_halves, hr_halves = self._halves(lr), self._halves(hr)
        metrics: dict[str, float] = {}
        l1_values = []
        joint, t0 = self.optim_cfg.t0 == 0, self.optim_cfg.t0
        for half in (0, 1):
            support, target = lr_halves[half], hr_halves[half]
            if joint:
                f = self.forward(self.model.condition, support)
                res = l1_255(self.forward(self.model, support.flatten(0, 1), f), target.flatten(0, 1))
                loss = res
                if self.loss_cfg.condition_loss != "res":
                    con, m = self._contrast(f, self.forward(self.model.condition, lr_halves[1 - half]))
                    loss, metrics = res + con, m
                self._update(loss, self.base_params + self.cond_params, "base", "condition")
            else:
                res = l1_255(self.forward(self.model, support.flatten(0, 1), support), target.flatten(0, 1))
                self._update(res, self.base_params, "base")
            l1_values.append(res.item())
            self.base_updates += 1
            if not joint and self.base_updates % t0 == 0:
                metrics = self._condition_step(lr_halves, hr_halves)
        return {"train/loss_l1": sum(l1_values) / 2, **metrics, **self._common_metrics()}

    def _condition_step(self, lr_halves: tuple[torch.Tensor, ...], hr_halves: tuple[torch.Tensor, ...]) -> dict:
        f1 = self.forward(self.model.condition, lr_halves[0])
        res = l1_255(self.forward(self.model, lr_halves[0].flatten(0, 1), f1), hr_halves[0].flatten(0, 1))
        con, metrics = None, {}
        if self.loss_cfg.condition_loss != "res":
            con, metrics = self._contrast(f1, self.forward(self.model.condition, lr_halves[1]))
        loss = self._condition_loss(res, con)
        self._update(loss, self.cond_params, "condition")
        return {**metrics, "train/loss_condition": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "base_updates": self.base_updates, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.base_updates = int(state["base_updates"])
        self.generator.set_state(state["generator"])
