"""Every entry of ``MODELS`` (and CMDSR over every BaseNet and modulation) honours the model contract:
[0, 1] LR of any (non-square) size at ×2/×3/×4 → SR of s× the size, finite gradients, seeded
determinism, and a state_dict round-trip that rebuilds from the config alone."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from blindsr.config import ModelConfig
from blindsr.config.model_fields import all_fields, fields_used, ignored_message
from blindsr.models import MODELS, Family, build_model, family_of
from blindsr.models.family import REQUIRED, check_family, check_paper
from blindsr.models.moco import MoCoSR

TINY = {
    "n_feats": 16, "n_blocks": 1, "support_size": 2, "codebook_size": 16, "moco_queue": 32, "n_groups": 1,
    "encoder_blocks": 1,
}  # fmt: skip
VARIANTS = [ModelConfig(name=name, **TINY) for name in sorted(MODELS)] + [
    ModelConfig(name="cmdsr", basenet=b, modulation=m, **TINY)
    for b, m in [("vdsr", "scale"), ("idn", "scale"), ("edsr", "scale"), ("srresnet", "sft")]
]
IDS = [f"{c.name}-{c.basenet}-{c.modulation}" if c.name == "cmdsr" else c.name for c in VARIANTS]


def run(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    return model(lr)  # conditional models self-support with seeded crops of the input


@pytest.mark.parametrize("cfg", VARIANTS, ids=IDS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_non_square_shape_and_finite_gradients(cfg, scale):
    torch.manual_seed(0)
    model = build_model(cfg, scale)
    lr = torch.rand(2, 3, 23, 37)
    sr = run(model, lr)
    assert sr.shape == (2, 3, 23 * scale, 37 * scale)
    assert torch.isfinite(sr).all()
    sr.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("cfg", VARIANTS, ids=IDS)
def test_seeded_build_is_deterministic_and_state_dict_round_trips(cfg):
    lr = torch.rand(1, 3, 17, 26)
    torch.manual_seed(3)
    a = build_model(cfg, 2).eval()
    torch.manual_seed(3)
    b = build_model(cfg, 2).eval()
    with torch.no_grad():
        torch.testing.assert_close(run(a, lr), run(b, lr), rtol=0, atol=0)

    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    rebuilt_cfg = ModelConfig(**dataclasses.asdict(cfg))  # rebuilt from the config alone
    torch.manual_seed(99)
    c = build_model(rebuilt_cfg, 2).eval()
    c.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(run(c, lr), run(a, lr), rtol=0, atol=0)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'vdsrr'; valid models: .*vdsr"):
        build_model(ModelConfig(name="vdsrr"), 2)


def test_config_accepts_exactly_the_registered_models():
    from typing import get_args, get_type_hints

    assert get_args(get_type_hints(ModelConfig)["name"]) == tuple(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_what_its_family_needs(name):
    cfg = ModelConfig(name=name, **TINY)
    model = build_model(cfg, 2)
    assert family_of(model) is family_of(cfg) is family_of(name)
    assert all(hasattr(model, attr) for attr in REQUIRED[family_of(name)])
    expected = {
        "cmdsr": Family.CONDITIONAL,
        "cdsr": Family.CONTRASTIVE,
        "dasr": Family.CONTRASTIVE,
        "cdcl": Family.MULTICROP,
        "kdsr": Family.DISTILLED,
    }
    assert family_of(name) is expected.get(name, Family.PLAIN)


def test_a_model_that_claims_a_family_without_its_methods_fails_at_build_time():
    class Broken(torch.nn.Module):
        family = Family.CONTRASTIVE  # no encoder, generator, contrastive_forward ...

    with pytest.raises(TypeError, match="Broken claims the contrastive family but lacks encoder, generator"):
        check_family(Broken())

    class HalfMoCo(MoCoSR):  # a contrastive model whose registry entry says plain
        pass

    model = HalfMoCo(torch.nn.Conv2d(3, 4, 3), torch.nn.Identity(), queue_size=8)
    with pytest.raises(TypeError, match="is contrastive, the registry lists plain"):
        check_family(model, "edsr")


def test_each_paper_job_trains_its_families_only():
    assert check_paper("cdsr", "dasr") is None and check_paper("cmdsr", "edsr") is None
    assert check_paper("cmdsr", "cdsr") == (
        "model.name='cdsr' is a contrastive model: train it with train_cdsr.py, not train_cmdsr.py"
    )


OTHER = {  # two valid values of every ModelConfig field: a test takes the one its config does not have
    "n_feats": (32, 48), "n_blocks": (2, 3), "basenet": ("edsr", "srresnet"), "support_size": (3, 4),
    "modulation": ("sft", "scale"), "encoder": ("dasr", "lpe"), "use_pixel_branch": (False, True),
    "use_patch_branch": (False, True), "use_codebook": (False, True), "codebook_size": (32, 64),
    "fusion": ("adain", "dqa"), "trunk": ("dasr", "rrdb"), "moco_queue": (64, 128),
    "moco_momentum": (0.9, 0.99), "moco_temperature": (0.1, 0.2), "n_groups": (2, 3),
    "encoder_blocks": (1, 2),
}  # fmt: skip
FLOATS = {"moco_momentum", "moco_temperature"}  # read at training time: no trace in the built weights


def fingerprint(cfg: ModelConfig) -> tuple:
    torch.manual_seed(0)
    model = build_model(cfg, 2)
    return repr(model), [(k, tuple(v.shape), v.sum().item()) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("cfg", VARIANTS, ids=IDS)
def test_a_field_is_listed_as_used_exactly_when_it_changes_the_model(cfg):
    assert set(OTHER) == all_fields()
    base = fingerprint(cfg)
    for field in sorted(all_fields() - FLOATS):
        other = next(v for v in OTHER[field] if v != getattr(cfg, field))
        changed = fingerprint(dataclasses.replace(cfg, **{field: other}))
        assert (changed != base) == (field in fields_used(cfg)), f"{cfg.name}: {field}"


def test_keys_a_model_ignores_are_named_with_what_it_reads():
    vdsr = ModelConfig(name="vdsr")
    assert ignored_message(vdsr, ["model.n_feats", "optim.lr"]) is None
    assert ignored_message(vdsr, ["model.name", "model.n_blocks"]) == (
        "model.n_blocks: not used by model 'vdsr', which reads model.n_feats"
    )
    no_codebook = ModelConfig(name="cdsr", use_codebook=False, trunk="dasr")
    assert ignored_message(no_codebook, ["model.codebook_size", "model.n_blocks"]).startswith(
        "model.codebook_size, model.n_blocks: not used by model 'cdsr' (encoder lpe, trunk dasr)"
    )
