"""CMDSR: the paper's parameter counts, the grouped modulated convolution against a per-sample loop,
task grouping, and the [0, 1] image contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from blindsr.config import ModelConfig
from blindsr.models import MODELS, build_model, count_parameters
from blindsr.models.cmdsr import CMDSR, ConditionNet, self_support
from blindsr.models.equalized import EqualConv2d
from blindsr.models.srresnet import SRResNet


@pytest.mark.parametrize(("n", "total"), [(20, 1_495_619), (10, 1_478_339), (1, 1_462_787)])
def test_parameter_counts_match_the_paper_and_official_code(n, total):
    model = CMDSR(scale=4, support_size=n)
    assert count_parameters(model.base) == 1_037_507  # Table III: BaseNet 1.04M
    assert count_parameters(model.condition_net) == 292_992 - (20 - n) * 3 * 64 * 9
    assert sum(p.numel() for p in model.modulations.parameters()) == 165_120
    assert count_parameters(model) == total


def test_grouped_modulated_conv_equals_a_per_sample_loop():
    torch.manual_seed(0)
    conv = EqualConv2d(8, 8)
    conv.bias.data.normal_()
    x, scales = torch.randn(5, 8, 9, 7), torch.rand(5, 8) + 0.5
    out = conv.modulated(x, scales)
    for b in range(5):
        w = conv.weight * conv.scale * scales[b][None, :, None, None]  # scales multiply input channels
        ref = F.conv2d(x[b : b + 1], w, conv.bias, padding=1)  # per-channel bias, untouched by modulation
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-5)


def test_unit_scales_reduce_to_the_plain_basenet():
    torch.manual_seed(1)
    model = CMDSR(scale=2, n_blocks=3, support_size=4)
    for m in model.modulations:
        m.weight.data.zero_()  # scales = bias = 1 for any condition
    lr, support = torch.rand(4, 3, 10, 12), torch.rand(2, 4, 3, 16, 16)
    torch.testing.assert_close(model(lr, support), model.base(lr), atol=1e-4, rtol=1e-5)


def test_scales_start_near_one():
    model = CMDSR(support_size=20)
    s = model.scales(model.condition_net(torch.rand(3, 20, 3, 48, 48)))
    assert s.shape == (10, 2, 3, 64)
    assert abs(s.mean().item() - 1) < 0.02 and s.std().item() < 0.1


def test_queries_use_their_own_tasks_condition():
    torch.manual_seed(2)
    model = CMDSR(scale=4, n_blocks=2, support_size=3)
    with torch.no_grad():
        for m in model.modulations:
            m.weight.normal_()  # make conditions matter
        lr, support = torch.rand(6, 3, 8, 8), torch.rand(2, 3, 3, 12, 12)
        joint = model(lr, support)
        for t in range(2):
            alone = model(lr[3 * t : 3 * t + 3], support[t : t + 1])
            torch.testing.assert_close(joint[3 * t : 3 * t + 3], alone, atol=1e-4, rtol=1e-4)
        other = model(lr[:3], support[1:2])
        assert not torch.allclose(other, joint[:3], atol=1e-3)
        with pytest.raises(ValueError, match="cannot be split evenly over 2 tasks"):
            model(lr[:5], support)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_shape_on_non_square_input(scale):
    model = SRResNet(scale=scale, n_blocks=2)
    assert model(torch.rand(2, 3, 7, 11)).shape == (2, 3, 7 * scale, 11 * scale)
    with pytest.raises(ValueError, match="supports scales 2, 3, 4"):
        SRResNet(scale=5)


def test_condition_net_checks_n_and_pools_globally():
    net = ConditionNet(support_size=5)
    assert net(torch.rand(2, 5, 3, 20, 14)).shape == (2, 128)
    with pytest.raises(ValueError, match="built for n = 5 support patches, got 4"):
        net(torch.rand(2, 4, 3, 20, 20))


def test_parameter_groups_partition_the_model():
    model = CMDSR(n_blocks=2, support_size=2)
    base = {id(p) for p in model.base_parameters()}
    cond = {id(p) for p in model.condition_parameters()}
    assert not base & cond and base | cond == {id(p) for p in model.parameters()}


def test_self_support_crops_the_input_reproducibly():
    lr = torch.rand(2, 3, 40, 30)
    a = self_support(lr, 6, 16, torch.Generator().manual_seed(0))
    b = self_support(lr, 6, 16, torch.Generator().manual_seed(0))
    assert a.shape == (2, 6, 3, 16, 16) and torch.equal(a, b)
    patch = a[1, 0]
    assert any(torch.equal(patch, lr[1, :, t : t + 16, l : l + 16]) for t in range(25) for l in range(15))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_builds_every_model(name):
    cfg = ModelConfig(name=name, n_blocks=2, support_size=3)
    model = build_model(cfg, scale=2)
    lr = torch.rand(3, 3, 10, 8)
    out = model(lr, torch.rand(3, 3, 3, 10, 8)) if name == "cmdsr" else model(lr)
    assert out.shape == (3, 3, 20, 16)
    with pytest.raises(ValueError, match="unknown model 'vdsrr'"):
        build_model(ModelConfig(name="vdsrr"), 2)
