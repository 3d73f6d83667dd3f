"""CdCL against its official code (tests/reference/cdcl_official*.py, MIT, verbatim): the papers' parameter
counts, the network's output after a weight copy (eval, ×2/×3/×4, non-square), and a training forward (SR, the
multi-crop loss, the EMA update, BatchNorm statistics); then its two training stages on real tasks."""

from __future__ import annotations

import re
import types

import pytest
import torch

from blindsr.config import PRESETS, ConfigError, LossConfig, apply_overrides
from blindsr.models import build_model, count_parameters
from blindsr.models.cdcl import DF2K_MEAN, CdCL
from blindsr.train.trainer import make_step
from reference.cdcl_official import BlindSR, InfoNCE

RULES = [  # official key → ours
    (r"G\.head\.0\.", "generator.head."),
    (r"G\.compress\.0\.", "generator.channel.0."),
    (r"G\.afterpixshuffle\.(\d)\.", lambda m: f"generator.spatial.{int(m[1]) + 1}."),
    (r"G\.body\.(\d+)\.body\.(\d+)\.da_conv\.loc\.avgafter\.", r"generator.groups.\1.blocks.\2.adapt.mlp."),
    (r"G\.body\.(\d+)\.body\.(\d+)\.da_conv\.sig1\.", r"generator.groups.\1.blocks.\2.adapt.spatial."),
    (r"G\.body\.(\d+)\.body\.(\d+)\.da_conv\.conv\.", r"generator.groups.\1.blocks.\2.adapt.conv."),
    (r"G\.tail\.0\.", "generator.up."),
    (r"G\.tail\.1\.", "generator.tail."),
    (r"E\.encoder(_ema)?\.0\.E\.(\d+)\.", lambda m: f"encoder.backbone{m[1] or ''}.{int(m[2]) // 3}.{int(m[2]) % 3}."),
    (r"E\.encoder(_ema)?\.1\.", r"encoder.projector\1."),
    (r"E\.predictor\.", "encoder.predictor."),
]
MLP = {"linear1": "0", "bn1": "1", "linear2": "3", "bn2": "4", "layer2": "3"}  # FastMoCo's named MLP layers


def our_key(key: str, n_groups: int, n_blocks: int) -> str | None:
    """Our name of an official key; None for the frozen mean shifts (a buffer here)."""
    if key.startswith(("G.sub_mean", "G.add_mean")):
        return None
    group = re.match(r"G\.body\.(\d+)\.(body\.(\d+)\.)?(.*)", key)
    if group and int(group[1]) == n_groups:
        return f"generator.body_tail.{group[4]}"
    if group and not group[4].startswith("da_conv"):
        g, b, rest = int(group[1]), int(group[3]), group[4]
        where = "blocks." + str(b) if b < n_blocks else "extra" if b == n_blocks else "conv"
        return f"generator.groups.{g}.{where}.{rest}"
    for pattern, replacement in RULES:
        key, n = re.subn(f"^{pattern}", replacement, key)
        if n:
            return re.sub(r"\.(linear1|bn1|linear2|bn2|layer2)\.", lambda m: f".{MLP[m[1]]}.", key + ".")[:-1]
    raise KeyError(key)


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Biases, BN statistics and the layer scales γ (1e-6 at init, which would hide every block) drawn at random."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point() or name.startswith(("G.sub_mean", "G.add_mean")):
                continue
            if name.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith(("bias", "running_mean")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("gamma"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model


def copy_official(official: torch.nn.Module, ours: CdCL, n_groups: int = 6, n_blocks: int = 6) -> None:
    state = {}
    for key, value in official.state_dict().items():
        mine = our_key(key, n_groups, n_blocks)
        if mine is None:
            sign = 1 if key.startswith("G.add_mean") else -1
            if key.endswith("bias"):
                torch.testing.assert_close(value, sign * torch.tensor(DF2K_MEAN), rtol=0, atol=0)
            continue
        state[mine] = value
    ours.load_state_dict(state)  # strict: every key of ours is filled, none left over


def official(scale: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomised(BlindSR(types.SimpleNamespace(scale=[scale], n_GPUs=1)), seed)


def test_parameter_counts_are_the_papers():
    """The paper counts the generator and the estimator's convs and BN (as DASR's 5.8M): CdCL-S 2.9M (Table I;
    Table III prints 2.87M), CdCL-L 5.9M (Table I; 5.91M in Table III)."""
    ref = official(4)
    expected = count_parameters(ref.G) + count_parameters(ref.E.encoder[0])
    small, large = (build_model(PRESETS[p]().model, 4) for p in ("cdcl_paper", "cdcl_large"))
    for model, total, paper in ((small, 2_913_463, 2.9), (large, 5_912_201, 5.9)):
        count = count_parameters(model.generator) + count_parameters(model.encoder.backbone)
        assert count == total and round(count / 1e6, 1) == paper
    assert 2_913_463 == expected
    assert count_parameters(small.encoder) == count_parameters(ref.E)  # projector and predictor too (EMA frozen)
    assert round(5_912_201 / 1e6, 2) == 5.91


@pytest.mark.parametrize(("scale", "size"), [(2, (23, 30)), (3, (20, 17)), (4, (24, 28))])
def test_equals_the_official_network_after_a_weight_copy(scale, size, photo):
    ref = official(scale, seed=scale).eval()
    ours = CdCL(scale)
    copy_official(ref, ours)
    ours.eval()
    h, w = size
    lr = torch.from_numpy(photo[:h, 10 : 10 + w].copy()).permute(2, 0, 1)[None].float() / 255
    lr = torch.cat([lr, lr.flip(-1)])
    with torch.no_grad():
        expected, got = ref(lr), ours(lr)
    assert got.shape == expected.shape == (2, 3, h * scale, w * scale)
    assert 0.01 < expected.std() and expected.abs().max() < 10  # picture-like, every block contributing
    assert (got - expected).abs().max() <= 1e-4


def test_a_training_forward_equals_the_officials(monkeypatch):
    """Training mode on 4 tasks × 3 crops: the SR of crop 0, the multi-crop loss (the official InfoNCE, T = 1),
    the EMA networks after their momentum update, and every BatchNorm's running statistics."""
    ref = official(2, seed=5).train()
    ours = CdCL(2)
    copy_official(ref, ours)
    ours.train()
    torch.manual_seed(1)
    crops = torch.rand(4, 3, 3, 16, 20)
    sr_ref, all_p, all_z = ref(crops)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # the official labels go to CUDA
    loss_ref = InfoNCE(1.0, 1)(all_p, all_z)
    out = ours.multicrop_forward(crops)
    loss = torch.nn.functional.cross_entropy(out.logits, out.labels)
    assert out.logits.shape == (3 * 2 * 6 * 4, 4)
    assert (out.sr - sr_ref).abs().max() <= 1e-4 and abs(loss.item() - loss_ref.item()) <= 1e-5
    state = ours.state_dict()
    for key, value in ref.state_dict().items():
        mine = our_key(key, 6, 6)
        if mine is not None and ("_ema" in key or "running" in key):
            torch.testing.assert_close(state[mine], value, rtol=0, atol=1e-6, msg=key)


def test_each_stage_trains_its_part_and_both_learn(task_batch):
    """The smoke schedule (2 encoder-only steps, then L1 + contrast) on real tasks of 4 kernels, shrunk: the
    encoder stage leaves the generator alone and lowers the contrast on fixed tasks; the joint stage lowers L1."""
    from blindsr.degradations.spec import DegradationSpec

    overrides = ["optim.pretrain_steps=12", "optim.pretrain_milestones=[]", "optim.schedule=multistep"]
    cfg = apply_overrides(PRESETS["cdcl_smoke"](), overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, 2)
    step = make_step(model, cfg.optim, LossConfig())
    sigmas = (0.3, 1.0, 1.6, 2.4)
    specs = [DegradationSpec(scale=2, kernel="iso", kernel_size=13, sigma=s) for s in sigmas]
    batch = task_batch(specs, m=3, patch=16)
    generator = [p.detach().clone() for p in model.generator_parameters()]
    first = step(*batch)
    assert first["train/stage"] == 0.0 and "train/loss_l1" not in first
    for _ in range(11):
        last = step(*batch)
    assert last["train/loss_contrast"] < 0.8 * first["train/loss_contrast"]
    assert all(torch.equal(a, b) for a, b in zip(generator, model.generator_parameters(), strict=True))
    joint = [step(*batch) for _ in range(20)]
    assert joint[0]["train/stage"] == 1.0 and joint[-1]["train/loss_l1"] < 0.7 * joint[0]["train/loss_l1"]
    assert not all(torch.equal(a, b) for a, b in zip(generator, model.generator_parameters(), strict=True))


def test_bad_values_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"model.name.*'cdc'.*'cdcl'"):
        apply_overrides(PRESETS["cdcl_demo"](), ["model.name=cdc"])
    with pytest.raises(ConfigError, match=r"model.n_groups in --set: must be >= 1"):
        apply_overrides(PRESETS["cdcl_demo"](), ["model.n_groups=0"])
    with pytest.raises(ConfigError, match=r"optim.schedule.*'cosin'"):
        apply_overrides(PRESETS["cdcl_demo"](), ["optim.schedule=cosin"])
    with pytest.raises(ConfigError, match=r"optim.cosine_steps in --set: must be >= 1 with schedule cosine"):
        apply_overrides(PRESETS["cdcl_demo"](), ["optim.cosine_steps=0"])
    with pytest.raises(ConfigError, match=r"optim.pretrain_gamma in --set: must be in \(0, 1\]"):
        apply_overrides(PRESETS["cdcl_demo"](), ["optim.pretrain_gamma=0"])
    with pytest.raises(ConfigError, match=r"optim.optimizer.*'sgd'.*'adamw'"):
        apply_overrides(PRESETS["cdcl_demo"](), ["optim.optimizer=sgd"])
    with pytest.raises(ConfigError, match=r"data.patches_per_task in --set: model cdcl contrasts .* at least 2"):
        apply_overrides(PRESETS["cdcl_demo"](), ["data.patches_per_task=1"])
    with pytest.raises(ConfigError, match=r"data.tasks_per_step in --set: model cdcl contrasts .* at least 2"):
        apply_overrides(PRESETS["cdcl_demo"](), ["data.tasks_per_step=1"])
