"""Training steps: CMDSR's alternating schedule (t0, joint), the ConditionNet loss choices, skipping of
non-finite steps, exact resume from ``state_dict``, and learning on real degraded tasks."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from blindsr.config import LossConfig, OptimConfig
from blindsr.degradations.spec import DegradationSpec
from blindsr.models.cmdsr import CMDSR
from blindsr.models.srresnet import SRResNet
from blindsr.train.step import CMDSRStep, SRStep
from blindsr.train.trainer import make_step

SHARP = DegradationSpec(scale=2, kernel="iso", kernel_size=7, sigma=0.3, noise=0.0)
BLURRY = DegradationSpec(scale=2, kernel="iso", kernel_size=7, sigma=2.0, noise=0.0)
NOISY = DegradationSpec(scale=2, kernel="iso", kernel_size=7, sigma=0.3, noise=30.0, seed=1)


def tiny_cmdsr(n: int = 2, seed: int = 0) -> CMDSR:
    torch.manual_seed(seed)
    return CMDSR(SRResNet(2, 16, 2), support_size=n)


def changed(before: list[torch.Tensor], params: list[torch.nn.Parameter]) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))


def snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("t0", [1, 4])
def test_condition_net_steps_every_t0_basenet_updates(task_batch, t0):
    lr, hr = task_batch([SHARP, BLURRY], m=4)
    model = tiny_cmdsr()
    step = CMDSRStep(model, OptimConfig(lr=1e-3, lr_condition=1e-3, t0=t0), LossConfig(), torch.Generator())
    cond_updates = 0
    for _ in range(4):
        cond, base = snapshot(model.condition_parameters()), snapshot(model.base_parameters())
        step(lr, hr)
        assert changed(base, model.base_parameters())  # BaseNet updates every iteration (twice: two halves)
        cond_updates += changed(cond, model.condition_parameters())
    assert step.base_updates == 8
    assert cond_updates == (4 if t0 == 1 else 2)  # every t0 BaseNet updates = every t0/2 iterations
    assert step.optimizers["condition"].state_dict()["state"][0]["step"] == 8 // t0


def test_joint_training_updates_both_nets_every_time(task_batch):
    lr, hr = task_batch([SHARP, BLURRY], m=4)
    model = tiny_cmdsr()
    step = CMDSRStep(model, OptimConfig(lr=1e-3, lr_condition=1e-3, t0=0), LossConfig(), torch.Generator())
    metrics = step(lr, hr)
    assert {"train/loss_l1", "train/loss_contrast", "train/dist_inner", "train/dist_cross"} <= metrics.keys()
    for opt in step.optimizers.values():
        assert opt.state_dict()["state"][0]["step"] == 2


@pytest.mark.parametrize(("kind", "has_contrast"), [("res", False), ("con", True), ("com", True)])
def test_condition_loss_choices(task_batch, kind, has_contrast):
    lr, hr = task_batch([SHARP, BLURRY, NOISY], m=4)
    step = CMDSRStep(tiny_cmdsr(), OptimConfig(t0=2), LossConfig(condition_loss=kind), torch.Generator())
    metrics = step(lr, hr)
    assert ("train/loss_contrast" in metrics) is has_contrast
    assert "train/loss_condition" in metrics


def test_wrong_patch_count_names_the_setting(task_batch):
    lr, hr = task_batch([SHARP, BLURRY], m=3)
    with pytest.raises(ValueError, match="data.patches_per_task=4"):
        CMDSRStep(tiny_cmdsr(), OptimConfig(), LossConfig(), torch.Generator())(lr, hr)


def test_non_finite_loss_skips_the_update(task_batch):
    lr, hr = task_batch([SHARP, BLURRY], m=4)
    model = SRResNet(2, 16, 2)
    step = SRStep(model, OptimConfig(lr=1e-3), LossConfig())
    before = snapshot(list(model.parameters()))
    bad = hr.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    step(lr, bad)
    step(lr, bad)
    assert not changed(before, list(model.parameters()))
    assert step.nonfinite_in_a_row == 2 and step.nonfinite_total == 2
    step(lr, hr)
    assert changed(before, list(model.parameters())) and step.nonfinite_in_a_row == 0


def test_resume_from_state_dict_is_exact(task_batch):
    batches = [task_batch([SHARP, BLURRY], m=4, seed=s) for s in range(3)]
    model = tiny_cmdsr()
    step = make_step(model, OptimConfig(lr=1e-3, t0=2), LossConfig(), torch.Generator().manual_seed(5))
    for lr, hr in batches[:2]:
        step(lr, hr)
    saved_model, saved_step = copy.deepcopy(model.state_dict()), copy.deepcopy(step.state_dict())
    step(*batches[2])

    resumed = tiny_cmdsr(seed=99)
    resumed.load_state_dict(saved_model)
    again = make_step(resumed, OptimConfig(lr=1e-3, t0=2), LossConfig(), torch.Generator())
    again.load_state_dict(saved_step)
    again(*batches[2])
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def separation(model: CMDSR, lr: torch.Tensor) -> float:
    """Mean cross-task (other degradation) over mean inner-task (other half, same task) feature distance."""
    with torch.no_grad():
        f1, f2 = model.condition(lr[:, :2]), model.condition(lr[:, 2:])
    other = torch.tensor([1, 0, 3, 2])  # tasks alternate sharp / blurry
    return ((f1 - f2[other]).norm(dim=1).mean() / (f1 - f2).norm(dim=1).mean()).item()


def test_cmdsr_learns_and_its_condition_separates_degradations(task_batch):
    """Overfit fixed tasks of 2 degradations on CPU: L1 falls, and on held-out tasks the ConditionNet's
    cross-degradation distance grows relative to the inner-task distance."""
    specs = [SHARP, BLURRY, SHARP, BLURRY]
    batches = [task_batch(specs, m=4, seed=s) for s in range(2)]
    held_out = task_batch(specs, m=4, seed=7)[0]
    model = tiny_cmdsr()
    step = CMDSRStep(
        model, OptimConfig(lr=1e-3, lr_condition=1e-3, t0=1), LossConfig(lambda_res=0.1), torch.Generator()
    )
    before = separation(model, held_out)
    first = step(*batches[0])
    for i in range(40):
        last = step(*batches[i % 2])
    assert last["train/loss_l1"] < 0.6 * first["train/loss_l1"]
    after = separation(model, held_out)
    print(f"separation before {before:.2f} after {after:.2f}")
    assert after > 1.5 and after > 1.2 * before


@pytest.mark.parametrize("name", ["cdsr", "dasr"])
def test_contrastive_models_learn_and_dasrs_encoder_separates_degradations(task_batch, name):
    """Overfit fixed (query, key) tasks of 2 degradations: L1 falls, and (DASR) on held-out crops the
    query embedding is closer to a crop of the same degradation than to one of the other degradation.

    CDSR's separation is not checked at this size: its CSC softmax has no temperature (as the paper), so
    from the N(0, 1) codebook it is one-hot from the first step and passes almost no gradient to the LPE
    branches. After 31 (or 61) steps held-out crops sit on whichever code their content picks: 0 of 4 seeds
    separated (3 of 8 without the codebook, 1 of 8 after 20 encoder-only steps); DASR: 8 of 8."""
    from blindsr.config import ModelConfig
    from blindsr.models import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(name=name, n_blocks=1, codebook_size=16, moco_queue=16, moco_momentum=0.9)
    model = build_model(cfg, 2)
    if name == "dasr":  # the paper-size 5×5 trunk is slow on CPU; shrink it for the test
        from blindsr.models.dasr import DASR

        model = DASR(scale=2, n_groups=1, n_blocks=1, moco_queue=16, moco_momentum=0.9)
    specs = [SHARP, BLURRY, SHARP, BLURRY]
    batches = [task_batch(specs, m=2, patch=16, seed=s) for s in range(2)]
    step = make_step(model, OptimConfig(lr=5e-4, milestones=[10_000]), LossConfig())
    first = step(*batches[0])
    for i in range(30):
        last = step(*batches[i % 2])
    assert last["train/loss_l1"] < 0.7 * first["train/loss_l1"]
    assert math.isfinite(last["train/loss_contrast"])  # (InfoNCE rises from ~0 as real keys replace the random queue)
    if name == "cdsr":
        return
    # BatchNorm's running statistics start at (0, 1), far from the true ones, and after 31 steps (0.9^31 of the
    # start left) eval-mode statistics are still mostly the initial ones: re-estimate them on the training
    # batches first (precise BN), as a long run does by itself
    with torch.no_grad():
        for m in model.encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average
        for lr_batch, *_ in batches:
            model.encoder.embed(lr_batch[:, 0])
    model.eval()
    lr = task_batch(specs, m=2, patch=16, seed=9)[0]
    with torch.no_grad():
        e = torch.nn.functional.normalize(model.encoder.embed(lr[:, 0]), dim=1)
    same = (e[0] @ e[2] + e[1] @ e[3]) / 2
    other = (e[0] @ e[1] + e[2] @ e[3]) / 2
    assert same > other
