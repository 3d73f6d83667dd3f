"""The Ray-free loop core (``blindsr.train.runner.run_steps``) driven by in-memory task batches made by the same
``DegradeWorker`` the stream runs: cadence of logging, validation and checkpoints, hooks, tail batches, the
non-finite stop, and a resume through a real checkpoint that continues bit for bit."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from blindsr.artifacts import checkpoint
from blindsr.config import Config, build_config
from blindsr.data.actor import DegradeWorker
from blindsr.train.runner import Cadence, LoopHook, run_steps
from blindsr.train.trainer import build_trainer
from blindsr.train.trainer import save as save_trainer


def batches(cfg: Config, first_step: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """The stream's batches in memory: step s (1-based) holds task ids (s-1)·k … s·k-1, uint8 like the stream."""
    worker = DegradeWorker(cfg.data, cfg.degradation, cfg.scale, cfg.seed)
    k, step = cfg.data.tasks_per_step, first_step
    while True:
        rows = [worker.make(t) for t in range(step * k, (step + 1) * k)]
        yield {
            "lr": torch.from_numpy(np.stack([r.task.lr for r in rows])),
            "hr": torch.from_numpy(np.stack([r.task.hr for r in rows])),
            "task_id": torch.tensor([r.task_id for r in rows]),
        }
        step += 1


def smoke(*overrides: str) -> Config:
    return build_config(
        "cmdsr_smoke", overrides=["train.steps=6", "train.checkpoint_every=3", "train.val_every=3", *overrides]
    )


def setup(cfg: Config, saved: checkpoint.Saved | None = None):
    trainer = build_trainer(cfg, saved=saved)
    return trainer.model, trainer.step


class Recorder(LoopHook):
    def __init__(self) -> None:
        self.steps: list[tuple[int, list[int]]] = []

    def after_step(self, step, batch, rank) -> None:
        self.steps.append((step, batch["task_id"].tolist()))


def test_cadence_hooks_and_tail_batches():
    cfg = smoke("train.steps=7", "train.log_every=2", "train.val_every=5", "train.checkpoint_every=3")
    _model, step_fn = setup(cfg)
    logged, validated, saved, hook = [], [], [], Recorder()
    stream = batches(cfg)
    short = {k: v[:1] for k, v in next(batches(cfg, first_step=100)).items()}  # a tail batch of 1 task
    feed = [next(stream), short, *(next(stream) for _ in range(9))]  # more than 7 steps' worth
    result = run_steps(
        step_fn, feed, Cadence.of(cfg), tasks_per_step=cfg.data.tasks_per_step,
        log=lambda m, i: logged.append((i, set(m))), validate=lambda i: validated.append(i) or {"val/psnr_y": i},
        save=lambda i, v: saved.append((i, v)), hooks=[hook],
    )  # fmt: skip
    assert result.step == 7 and result.stopped is None and result.last_saved == 7
    assert [i for i, _ in logged] == [2, 4, 6] and all("train/loss_l1" in m for _, m in logged)
    assert validated == [3, 5, 6, 7] and saved == [(i, {"val/psnr_y": i}) for i in validated]  # + the last step
    k = cfg.data.tasks_per_step
    assert hook.steps == [(s, list(range((s - 1) * k, s * k))) for s in range(1, 8)]  # the tail batch was skipped
    assert result.val_metrics == {"val/psnr_y": 7}


@pytest.mark.parametrize(
    "extra",
    [(), ("train.precision=bf16", "train.ema_decay=0.9", "train.channels_last=true")],
    ids=["fp32", "bf16-ema-channels_last"],
)
def test_resume_from_a_checkpoint_continues_bit_for_bit(tmp_path, extra):
    cfg = smoke(*extra)
    straight, straight_step = setup(cfg)
    run_steps(straight_step, batches(cfg), Cadence.of(cfg), tasks_per_step=cfg.data.tasks_per_step)

    first = build_trainer(cfg)
    saved = []

    def save(i, values):
        saved.append(i)
        save_trainer(tmp_path / f"step{i}", cfg, first, {"step": i})

    part = run_steps(first.step, batches(cfg), Cadence.of(cfg), tasks_per_step=cfg.data.tasks_per_step, save=save)
    assert saved == [3, 6] and part.step == 6
    again, again_step = setup(cfg, saved=checkpoint.read(tmp_path / "step3"))
    hook = Recorder()
    resumed = run_steps(
        again_step,
        batches(cfg, first_step=3),
        Cadence.of(cfg),
        start=3,
        tasks_per_step=cfg.data.tasks_per_step,
        hooks=[hook],
    )
    assert resumed.step == 6 and [s for s, _ in hook.steps] == [4, 5, 6]
    for (name, a), b in zip(straight.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (straight_step.ema is None) is (cfg.train.ema_decay == 0)
    if straight_step.ema is not None:  # the average resumed too, and it is not the live weights
        assert again_step.ema.updates == straight_step.ema.updates == 6
        for (name, a), b in zip(
            straight_step.ema.state_dict().items(), again_step.ema.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name
        assert not torch.equal(straight_step.ema.module.base.head.weight, straight.base.head.weight)


def test_non_finite_losses_stop_with_the_step_and_last_checkpoint():
    cfg = smoke("optim.lr=1e30", "train.max_nonfinite=2", "model.name=srresnet", "train.checkpoint_every=1")
    _model, step_fn = setup(cfg)
    result = run_steps(step_fn, batches(cfg), Cadence.of(cfg), tasks_per_step=cfg.data.tasks_per_step, where="/runs/x")
    assert result.stopped is not None and result.step < cfg.train.steps
    assert result.stopped == (
        f"2 non-finite losses in a row up to step {result.step}; last good checkpoint: "
        f"step {result.last_saved} in /runs/x"
    )
    assert result.last_saved == result.step - 1  # checkpoints every step until the one that stopped it


def test_a_finished_run_trains_nothing():
    cfg = smoke()
    _model, step_fn = setup(cfg)
    result = run_steps(step_fn, batches(cfg), Cadence.of(cfg), start=6, tasks_per_step=cfg.data.tasks_per_step)
    assert result.step == 6 and result.metrics == {} and step_fn.iteration == 0


@pytest.mark.parametrize("bad", [0, -1])
def test_tracking_retry_interval_is_validated(bad):
    from blindsr.config import ConfigError

    if bad == 0:
        assert build_config(overrides=["tracking.retry_every_s=0"]).tracking.retry_every_s == 0
    else:
        with pytest.raises(ConfigError, match="retry_every_s"):
            build_config(overrides=[f"tracking.retry_every_s={bad}"])
