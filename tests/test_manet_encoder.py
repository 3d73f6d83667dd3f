"""MANet's kernel estimator as CDSR's degradation encoder (Table 4 "E_manet"): the official estimator's parameter
count and outputs (tests/reference, Apache-2.0, verbatim) with its weights copied, shapes at ×2 / ×4, one training
step of CDSR with it, and the config's choice of encoder."""

from __future__ import annotations

import re

import pytest
import torch

from blindsr.config import Config, ConfigError, LossConfig, ModelConfig, OptimConfig, from_dict
from blindsr.config.model_fields import ignored_message
from blindsr.models import build_model, count_parameters
from blindsr.models.cdsr import CDSR
from blindsr.models.cdsr_encoder import Encoder
from blindsr.models.manet_encoder import KernelEstimator, MAConv, MANetFeatures
from blindsr.train.trainer import make_step
from reference.manet_official import MAConv as OfficialMAConv
from reference.manet_official import MANet_s1 as OfficialMANetS1

ESTIMATOR = 1_810_361  # official MANet(nc=[128, 256], nb=1): manet_nf 128 in the official stage-1 and stage-3 options


def ours(name: str) -> str:
    """An official estimator key → ours (``m_body`` with nb = 1 is the bare block: the official ``sequential``
    unwraps a single module)."""
    name = re.sub(r"^m_(head|tail)\.", r"\1.", name)
    name = re.sub(r"^m_down1\.", "down.", re.sub(r"^m_up1\.", "up.", re.sub(r"^m_body\.", "body.0.", name)))
    name = re.sub(r"\.fc(\d+)\.", r".affine.\1.", name.replace(".res.", ".residual."))
    return re.sub(r"\.conv(\d+)\.", r".conv.\1.", name)


def copied(official: torch.nn.Module, mine: torch.nn.Module) -> torch.nn.Module:
    state = {ours(k): v for k, v in official.state_dict().items()}
    mine.load_state_dict(state)  # strict: every key of both sides used once
    return mine


def test_estimator_equals_the_official_after_copying_the_weights():
    torch.manual_seed(0)
    official = OfficialMANetS1(manet_nf=128, manet_nb=1, split=2).kernel_estimation.eval()
    with torch.no_grad():
        for p in official.parameters():  # random biases too: a key copied to the wrong place shows
            p.add_(0.05 * torch.randn_like(p))
    mine = copied(official, KernelEstimator()).eval()
    assert count_parameters(mine) == count_parameters(official) == ESTIMATOR
    for shape in [(2, 3, 16, 24), (1, 3, 23, 37), (1, 3, 5, 3)]:  # multiples of 8 and padded sizes
        x = torch.rand(shape)
        with torch.no_grad():
            kernels = mine(x)
            torch.testing.assert_close(kernels, official(x), atol=1e-5, rtol=1e-5)
        assert kernels.shape == (shape[0], 441, *shape[2:])
        torch.testing.assert_close(kernels.sum(dim=1), torch.ones(shape[0], *shape[2:]))


def test_maconv_with_three_uneven_groups_equals_the_official():
    torch.manual_seed(1)
    official = OfficialMAConv(64, 64, 3, 1, 1, True, split=3, reduction=2)
    mine = MAConv(64, 64, split=3)
    assert mine.groups == [21, 21, 22]
    mine.load_state_dict({ours(f".{k}")[1:]: v for k, v in official.state_dict().items()})
    x = torch.randn(2, 64, 7, 9)
    torch.testing.assert_close(mine(x), official(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2 channel groups"):
        MAConv(8, 8, split=1)


def test_parameter_counts():
    features = MANetFeatures()
    assert count_parameters(features.estimator) == ESTIMATOR
    assert count_parameters(features.code) == 178_944  # 441·256 + 256 + 256·256 + 256
    encoder = Encoder("manet")
    assert count_parameters(encoder.features) == 1_989_305
    assert count_parameters(encoder) == 1_989_305 + 393_728 + 131_584  # + CSC (L = 1024) + projection head
    assert encoder.input_scale == 1.0  # MANet reads [0, 1]
    # CDSR ×2 with 10 blocks: the LPE model's 13,232,558 with the LPE encoder (2,934,592) swapped out
    assert count_parameters(CDSR(2, encoder="manet")) == 13_232_558 - 2_934_592 + 2_514_617


@pytest.mark.parametrize("scale", [2, 4])
def test_forward_shapes(scale):
    torch.manual_seed(2)
    model = CDSR(scale, n_blocks=1, encoder="manet", moco_queue=8).eval()
    lr = torch.rand(2, 3, 23, 37)
    with torch.no_grad():
        embedding, projection = model.encoder.encoder_q(lr)
        sr = model(lr)
    assert embedding.shape == projection.shape == (2, 256)
    assert sr.shape == (2, 3, 23 * scale, 37 * scale) and torch.isfinite(sr).all()


def test_cdsr_with_the_manet_encoder_trains_one_step():
    torch.manual_seed(3)
    model = build_model(ModelConfig(name="cdsr", encoder="manet", n_blocks=1, moco_queue=8), scale=2)
    assert isinstance(model.encoder.encoder_q.features, MANetFeatures)
    estimator = model.encoder.encoder_q.features.estimator
    before = [p.detach().clone() for p in estimator.parameters()]
    step = make_step(model, OptimConfig(), LossConfig())
    metrics = step(torch.rand(4, 2, 3, 16, 16), torch.rand(4, 2, 3, 32, 32))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()) and metrics["train/nonfinite_steps"] == 0
    grads = [p.grad for p in model.encoder_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad.abs().sum() > 0 for p in estimator.parameters())  # L1 and InfoNCE reach the estimator
    assert all(not torch.equal(a, b) for a, b in zip(before, estimator.parameters(), strict=True))


def test_config_accepts_manet_and_lists_the_choices():
    assert from_dict(Config, {"model": {"name": "cdsr", "encoder": "manet"}}).model.encoder == "manet"
    with pytest.raises(
        ConfigError, match="model.encoder: 'manett' is not a valid choice; valid choices: 'lpe', 'dasr', 'manet'$"
    ):
        from_dict(Config, {"model": {"encoder": "manett"}})
    with pytest.raises(ValueError, match="unknown encoder 'x'; valid: lpe, dasr, manet"):
        Encoder("x")  # type: ignore[arg-type]
    # the LPE branch switches mean nothing to MANet's estimator (as to DASR's encoder): a given key is refused
    message = ignored_message(ModelConfig(name="cdsr", encoder="manet"), ["model.use_patch_branch"])
    assert message is not None and message.startswith("model.use_patch_branch: not used by model 'cdsr' (encoder manet")
