"""The training loop's core, without Ray or MLflow: ``run_steps(step_fn, batches, ...)``.

The Ray worker (``blindsr.train.worker``) hands over its dataset shard as ``batches`` and three callables (``log``,
``validate`` on rank 0, ``save`` through ``ray.train.report``); tests drive it with an in-memory list of batches.
:class:`LoopHook` objects see the loop from inside (``begin`` per attempt, ``after_step`` per counted step); the
reliability tests use them to reach a fault at a chosen step. Nothing in the user's config is a test hook."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from blindsr.config import Config

Metrics = dict[str, float]


class StepFn(Protocol):
    """One optimisation step (``blindsr.train.step``): float batches in, metrics out."""

    nonfinite_in_a_row: int

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> Metrics: ...


class LoopHook:
    """Called by :func:`run_steps`; the defaults do nothing. Hooks must pickle (they travel to Ray workers)."""

    def begin(self, cfg: Config, start: int, rank: int) -> None:
        """An attempt of run ``cfg`` starts at step ``start`` (0: fresh; else its checkpoint's) on ``rank``."""

    def after_step(self, step: int, batch: Mapping[str, Any], rank: int) -> None:
        """Step ``step`` (1-based) has trained on ``batch`` and been logged, validated and saved as due."""


@dataclass(frozen=True)
class Cadence:
    """When the loop logs, validates and checkpoints (``TrainConfig``'s counters)."""

    steps: int  # the last step
    log_every: int
    val_every: int
    checkpoint_every: int
    max_nonfinite: int  # stop after this many non-finite losses in a row

    @classmethod
    def of(cls, cfg: Config) -> Cadence:
        t = cfg.train
        return cls(t.steps, t.log_every, t.val_every, t.checkpoint_every, t.max_nonfinite)

    def saves_at(self, step: int) -> bool:
        """Validation and a checkpoint come together, so a checkpoint always carries its PSNR."""
        return step % self.val_every == 0 or step % self.checkpoint_every == 0 or step == self.steps


@dataclass
class LoopResult:
    step: int  # the last step trained
    metrics: Metrics = field(default_factory=dict)  # of the last step
    val_metrics: Metrics = field(default_factory=dict)  # of the last validation
    stopped: str | None = None  # why training stopped early (non-finite losses), else None
    last_saved: int = 0  # the step of the last checkpoint (the start step when none was written)


def to_float(batch: Mapping[str, Any], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``lr`` (k, n, 3, h, w) and ``hr`` (k, n, 3, s·h, s·w) → float [0, 1] on ``device``."""
    lr = torch.as_tensor(batch["lr"]).to(device, non_blocking=True).float().div_(255)
    hr = torch.as_tensor(batch["hr"]).to(device, non_blocking=True).float().div_(255)
    return lr, hr


def run_steps(
    step_fn: StepFn,
    batches: Iterable[Mapping[str, Any]],
    cadence: Cadence,
    *,
    start: int = 0,
    tasks_per_step: int,
    device: torch.device | str = "cpu",
    log: Callable[[Metrics, int], None] = lambda metrics, step: None,
    validate: Callable[[int], Metrics] = lambda step: {},
    save: Callable[[int, Metrics], None] = lambda step, val: None,
    hooks: Sequence[LoopHook] = (),
    rank: int = 0,
    where: str = "",
) -> LoopResult:
    """Train from step ``start`` + 1 until ``cadence.steps`` or the batches run out.

    Args:
        batches: task batches (uint8 ``lr``/``hr`` tensors or arrays, k tasks each); a short tail batch
            (fewer than ``tasks_per_step`` tasks) is skipped, as every rank skips it alike.
        log: ``log(metrics, step)`` every ``cadence.log_every`` steps (the caller decides which rank logs).
        validate: ``validate(step) → metrics`` when a checkpoint is due, before ``save``.
        save: ``save(step, val_metrics)`` writes the checkpoint (collective under Ray: called on every rank).
        where: the checkpoint location, named in the non-finite stop message.

    Returns:
        The last step, its metrics, the last validation, and ``stopped`` when non-finite losses stopped it.
    """
    result = LoopResult(step=start, last_saved=start)
    if start >= cadence.steps:
        return result
    for batch in batches:
        if batch["lr"].shape[0] != tasks_per_step:
            continue
        result.metrics = step_fn(*to_float(batch, device))
        result.step += 1
        i = result.step
        if step_fn.nonfinite_in_a_row >= cadence.max_nonfinite:
            result.stopped = (
                f"{step_fn.nonfinite_in_a_row} non-finite losses in a row up to step {i}; "
                f"last good checkpoint: step {result.last_saved} in {where}"
            )
            break
        if i % cadence.log_every == 0:
            log(result.metrics, i)
        if cadence.saves_at(i):
            result.val_metrics = validate(i)
            save(i, result.val_metrics)
            result.last_saved = i
        for hook in hooks:
            hook.after_step(i, batch, rank)
        if i >= cadence.steps:
            break
    return result
