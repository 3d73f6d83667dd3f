"""KDSR (reimplemented; its code has no licence): the paper's parameter counts, what the teacher and the student
read, the distillation loss against its formula, and the two-stage schedule of the family contract: each stage
trains its own part (and only it) and lowers its losses on real tasks; a resume across the stage boundary."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blindsr.config import PRESETS, ConfigError, LossConfig, apply_overrides, build_config
from blindsr.degradations.spec import DegradationSpec
from blindsr.losses import distillation
from blindsr.models import build_model, count_parameters
from blindsr.models.kdsr import KDSR
from blindsr.train.trainer import make_step


def paper_count(model: KDSR) -> int:
    """The paper counts what runs at test time: the student KD-IDE and the generator."""
    return count_parameters(model.student) + count_parameters(model.generator)


@pytest.mark.parametrize(
    ("preset", "total", "paper"), [("kdsr_paper", 5_795_075, 5.80), ("kdsr_large", 14_190_979, 14.19)]
)
def test_parameter_counts_are_the_papers(preset, total, paper):
    model = build_model(PRESETS[preset]().model, 4)
    assert paper_count(model) == total and round(total / 1e6, 2) == paper  # KDSR Table 1: 5.80M, 14.19M
    c = model.generator.head.out_channels
    first = model.teacher.features[0]
    assert first.in_channels == 3 + 3 * 16 and model.student.features[0].in_channels == 3  # HR phases at x4
    assert count_parameters(model.teacher) - count_parameters(model.student) == (first.in_channels - 3) * c * 9


def test_the_teacher_reads_the_hr_and_the_student_does_not():
    torch.manual_seed(0)
    model = KDSR(2, n_feats=8, n_blocks=1, n_resblocks=1).eval()
    lr, hr = torch.rand(2, 3, 10, 14), torch.rand(2, 3, 20, 28)
    phases = model.teacher_input(lr, hr)
    assert phases.shape == (2, 15, 10, 14) and torch.equal(phases[:, 3 + 2 * 4 + 1 * 2], hr[:, 2, 1::2, 0::2])
    with torch.no_grad():
        sr_t, idr_t = model.teacher_forward(lr, hr)
        other = model.teacher_forward(lr, hr.flip(-1))[1]
        sr_s, idr_s = model.student_forward(lr)
        assert not torch.allclose(idr_t, other) and idr_t.shape == idr_s.shape == (2, 32)
        assert sr_t.shape == sr_s.shape == hr.shape
        torch.testing.assert_close(model(lr), sr_s, rtol=0, atol=0)  # the test-time path is the student's


def test_distillation_is_the_kl_divergence_of_tempered_softmaxes():
    torch.manual_seed(1)
    s, t, temp = torch.randn(3, 6), torch.randn(3, 6), 0.15
    p, q = F.softmax(t / temp, dim=1), F.softmax(s / temp, dim=1)
    expected = (p * (p.log() - q.log())).sum() / 3  # KL(p ‖ q) per row, mean over rows
    assert math.isclose(distillation(s, t, temp).item(), expected.item(), rel_tol=1e-5)
    assert distillation(t, t, temp).item() == pytest.approx(0.0, abs=1e-6)
    assert math.isclose(distillation(s, t, temp, "l1").item(), (s - t).abs().mean().item(), rel_tol=1e-6)
    with pytest.raises(ValueError, match="'l2'.*valid: kl, l1"):
        distillation(s, t, temp, "l2")


def snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before: list[torch.Tensor], params: list[torch.nn.Parameter]) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))


def test_both_stages_train_their_own_part_and_learn(task_batch):
    """Teacher stage: L1 falls; the teacher KD-IDE and the generator change, the student does not. Student stage:
    L1 and the KD loss fall; the student and the generator change, the teacher does not (frozen target)."""
    cfg = apply_overrides(
        PRESETS["kdsr_smoke"](), ["optim.pretrain_steps=25", "optim.pretrain_milestones=[]", "optim.milestones=[]"]
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 2)
    step = make_step(model, cfg.optim, cfg.loss)
    specs = [DegradationSpec(scale=2, kernel="iso", kernel_size=13, sigma=s) for s in (0.3, 1.0, 1.6, 2.4)]
    batch = task_batch(specs, m=2, patch=16)
    parts = {name: list(getattr(model, name).parameters()) for name in ("teacher", "student", "generator")}
    before = {name: snapshot(p) for name, p in parts.items()}
    teacher = [step(*batch) for _ in range(25)]
    assert {m["train/stage"] for m in teacher} == {0.0} and "train/loss_kd" not in teacher[-1]
    assert teacher[-1]["train/loss_l1"] < 0.6 * teacher[0]["train/loss_l1"]
    assert changed(before["teacher"], parts["teacher"]) and changed(before["generator"], parts["generator"])
    assert not changed(before["student"], parts["student"])

    before = {name: snapshot(p) for name, p in parts.items()}
    student = [step(*batch) for _ in range(25)]
    assert {m["train/stage"] for m in student} == {1.0}
    assert student[-1]["train/loss_kd"] < 0.5 * student[0]["train/loss_kd"]
    assert student[-1]["train/loss_l1"] < student[0]["train/loss_l1"]
    assert changed(before["student"], parts["student"]) and changed(before["generator"], parts["generator"])
    assert not changed(before["teacher"], parts["teacher"])
    assert set(step.optimizers) == {"sr", "teacher"}  # a fresh optimiser for the student, as the official stage 4


@pytest.mark.parametrize("distance", ["kl", "l1"])
def test_the_student_stage_distils_with_the_configured_distance(task_batch, distance):
    """The step's KD loss is ``loss.kd_distance`` of the student's IDR from the teacher's, on the step's own crops."""
    cfg = apply_overrides(
        PRESETS["kdsr_smoke"](),
        ["optim.pretrain_steps=0", "optim.pretrain_milestones=[]", f"loss.kd_distance={distance}"],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 2)
    step = make_step(model, cfg.optim, cfg.loss)
    specs = [DegradationSpec(scale=2, kernel="iso", kernel_size=13, sigma=s) for s in (0.5, 2.0)]
    lr, hr = task_batch(specs, m=2, patch=16)
    with torch.no_grad():
        flat_lr, flat_hr = lr.flatten(0, 1), hr.flatten(0, 1)
        expected = distillation(model.student_forward(flat_lr)[1], model.teacher_idr(flat_lr, flat_hr), 0.15, distance)
    metrics = step(lr, hr)
    assert metrics["train/stage"] == 0.0 and metrics["train/loss_kd"] == pytest.approx(expected.item(), rel=1e-5)


def test_the_paper_schedule_of_each_stage():
    """lr by iteration: the teacher at 1e-4 halved from epochs 125, 250, 375, 500 (1000 iterations each); the
    student, from its own start, at 1e-4 halved from epochs 150, 300, 450, 600."""
    from blindsr.train.optim import main_factor, pretrain_factor

    paper = PRESETS["kdsr_paper"]()
    assert paper.scaling.degrade_actors == "auto" and paper.data.tasks_per_step == 64 and paper.data.patch_size == 64
    o = paper.optim
    assert [o.lr_pretrain * pretrain_factor(o, t) for t in (0, 123_999, 124_000, 499_000)] == [
        1e-4,
        1e-4,
        5e-5,
        6.25e-6,
    ]
    assert [o.lr * main_factor(o, t) for t in (0, 148_999, 149_000, 599_999)] == [1e-4, 1e-4, 5e-5, 6.25e-6]


@pytest.mark.parametrize("preset", ["kdsr_smoke", "cdcl_smoke"])
def test_a_checkpoint_at_the_stage_boundary_resumes_bit_for_bit(preset, tmp_path):
    """Stage 1 ends at step 3 with a checkpoint; resumed from it, stage 2 (its own or the shared optimiser)
    continues exactly as the run that never stopped."""
    from blindsr.artifacts import checkpoint
    from blindsr.train.runner import Cadence, run_steps
    from blindsr.train.trainer import build_trainer
    from blindsr.train.trainer import save as save_trainer
    from test_runner import batches

    cfg = build_config(preset, overrides=["train.steps=5", "train.checkpoint_every=3", "train.val_every=3"])
    cfg = apply_overrides(cfg, ["optim.pretrain_steps=3", "optim.pretrain_milestones=[2]"])
    k = cfg.data.tasks_per_step
    straight = build_trainer(cfg)
    run_steps(straight.step, batches(cfg), Cadence.of(cfg), tasks_per_step=k)
    first = build_trainer(cfg)
    save = lambda i, v: save_trainer(tmp_path / f"step{i}", cfg, first, {"step": i})  # noqa: E731
    run_steps(first.step, batches(cfg), Cadence.of(cfg), tasks_per_step=k, save=save)
    again = build_trainer(cfg, saved=checkpoint.read(tmp_path / "step3"))
    assert again.step.stage.name != "main" and again.step.iteration == 3
    run_steps(again.step, batches(cfg, first_step=3), Cadence.of(cfg), start=3, tasks_per_step=k)
    assert again.step.stage.name == "main"
    for (name, a), b in zip(straight.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_bad_values_are_refused_by_name():
    demo = PRESETS["kdsr_demo"]()
    for override, pattern in [
        ("model.name=kdrs", r"model.name.*'kdrs'.*'kdsr'"),
        ("model.encoder_blocks=-1", r"model.encoder_blocks in --set: must be >= 0"),
        ("loss.kd_temperature=0", r"loss.kd_temperature in --set: must be > 0"),
        ("loss.weight_kd=-1", r"loss.weight_kd in --set: must be >= 0"),
        ("loss.kd_distance=kll", r"loss.kd_distance.*'kll'.*'kl', 'l1'"),
        ("optim.pretrain_steps=-1", r"optim.pretrain_steps in --set: must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            apply_overrides(demo, [override])
    assert LossConfig().kd_temperature == 0.15 and LossConfig().kd_distance == "kl"
