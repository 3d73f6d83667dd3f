"""CMDSR and its BaseNets: the papers' parameter counts, the grouped modulated convolution against a
per-sample loop, task grouping, SFT, and the [0, 1] image contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from blindsr.models import count_parameters
from blindsr.models.cmdsr import CMDSR, ConditionNet, self_support
from blindsr.models.edsr import EDSR
from blindsr.models.equalized import EqualConv2d
from blindsr.models.idn import IDN
from blindsr.models.modconv import ModConv2d
from blindsr.models.srresnet import SRResNet
from blindsr.models.vdsr import VDSR


def cmdsr(scale: int = 4, n_blocks: int = 10, n: int = 20, modulation: str = "scale") -> CMDSR:
    return CMDSR(SRResNet(scale, 64, n_blocks), n, modulation)


@pytest.mark.parametrize(("n", "total"), [(20, 1_495_619), (10, 1_478_339), (1, 1_462_787)])
def test_parameter_counts_match_the_paper_and_official_code(n, total):
    model = cmdsr(n=n)
    assert count_parameters(model.base) == 1_037_507  # Table III: BaseNet 1.04M
    assert count_parameters(model.condition_net) == 292_992 - (20 - n) * 3 * 64 * 9
    assert count_parameters(model.modulation) == 165_120  # 20 × (128·64 + 64)
    assert count_parameters(model) == total


def test_basenet_parameter_counts_of_tables_iv_and_x():
    assert count_parameters(SRResNet(4, 64, 16)) == 1_037_507 + 6 * 2 * 36_928  # SRResNet-16 (Table IV)
    assert count_parameters(VDSR(4)) == 667_008  # Table X: 0.67M
    assert count_parameters(EDSR(4, 256, 32)) == 43_089_923  # Table X: 43M
    assert count_parameters(IDN(4)) == 590_915  # the CMDSR repo's IDN (Table X prints 0.80M)


@pytest.mark.parametrize("conv_cls", [EqualConv2d, ModConv2d])
def test_modulated_conv_equals_a_per_sample_loop_over_scaled_weights(conv_cls):
    torch.manual_seed(0)
    conv = EqualConv2d(8, 6) if conv_cls is EqualConv2d else ModConv2d(8, 6, 3, padding=1)
    conv.bias.data.normal_()
    weight = conv.scaled_weight() if conv_cls is EqualConv2d else conv.weight
    x, scales = torch.randn(5, 8, 9, 7), torch.rand(5, 8) + 0.5
    out = conv.modulated(x, scales)
    for b in range(5):
        w = weight * scales[b][None, :, None, None]  # scales multiply input channels
        ref = F.conv2d(x[b : b + 1], w, conv.bias, padding=1)  # per-channel bias, untouched by modulation
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("base", [SRResNet(2, 64, 3), VDSR(2, 16, 5), IDN(2, 16, 2), EDSR(2, 16, 2)])
def test_unit_scales_reduce_to_the_plain_basenet(base):
    torch.manual_seed(1)
    model = CMDSR(base, support_size=4)
    for head in model.modulation.heads:
        head.weight.data.zero_()  # scales = bias = 1 for any condition
    lr, support = torch.rand(4, 3, 10, 12), torch.rand(2, 4, 3, 16, 16)
    torch.testing.assert_close(model(lr, support), model.base(lr), atol=1e-4, rtol=1e-4)


def test_scales_start_near_one():
    model = cmdsr(n=20)
    s = torch.stack(model.modulation.scales(model.condition(torch.rand(3, 20, 3, 48, 48))))
    assert s.shape == (20, 3, 64)
    assert abs(s.mean().item() - 1) < 0.02 and s.std().item() < 0.1


@pytest.mark.parametrize("modulation", ["scale", "sft"])
def test_queries_use_their_own_tasks_condition(modulation):
    torch.manual_seed(2)
    model = cmdsr(scale=4, n_blocks=2, n=3, modulation=modulation)
    with torch.no_grad():
        lr, support = torch.rand(6, 3, 8, 8), torch.randn(2, 128)  # precomputed, different conditions
        joint = model(lr, support)
        for t in range(2):
            alone = model(lr[3 * t : 3 * t + 3], support[t : t + 1])
            torch.testing.assert_close(joint[3 * t : 3 * t + 3], alone, atol=1e-4, rtol=1e-4)
        other = model(lr[:3], support[1:2])
        assert not torch.allclose(other, joint[:3], atol=1e-3)
        with pytest.raises(ValueError, match="cannot be split evenly over 2 tasks"):
            model(lr[:5], support)


def test_sft_layers_sit_in_front_of_every_modulated_conv():
    model = cmdsr(n_blocks=10, n=10, modulation="sft")
    per_layer = 2 * (192 * 32 * 9 + 32) + 2 * (32 * 64 * 9 + 64)  # IKC SFT on [64 features ⊕ 128 condition]
    assert count_parameters(model.modulation) == 20 * per_layer
    assert count_parameters(model) == 1_037_507 + 292_992 - 10 * 1_728 + 20 * per_layer


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
    model = cmdsr(n_blocks=2, n=2)
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
