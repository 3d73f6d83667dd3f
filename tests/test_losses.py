"""Losses against their formulas: the official CMDSR task-contrastive loss (naive exp/log), the paper's
squared-distance form, InfoNCE as −log softmax of the positive, and the derangement pairing."""

from __future__ import annotations

import math

import pytest
import torch

from blindsr.losses import derangement, info_nce, l1_255, task_contrastive


def official_elementwise(f1: torch.Tensor, f2: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The official code: pairwise_distance on (k, D, 1, 1) reduces over a size-1 axis → |a − b + 1e-6|."""
    d_in = (f1 - f2 + 1e-6).abs()
    d_cross = (f1 - f2[perm] + 1e-6).abs()
    return (torch.log(1 + torch.exp(d_in**2)) + torch.log(1 + torch.exp(-(d_cross**2)))).mean()


def test_elementwise_form_equals_the_official_code():
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.rand(6, 128, generator=g), torch.rand(6, 128, generator=g)
    perm = derangement(6, g)
    loss, d_in, d_cross = task_contrastive(f1, f2, perm, "elementwise")
    torch.testing.assert_close(loss, official_elementwise(f1, f2, perm), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(d_in, (f1 - f2 + 1e-6).abs().mean())
    torch.testing.assert_close(d_cross, (f1 - f2[perm] + 1e-6).abs().mean())


def test_squared_distance_form_equals_the_papers_equations():
    f1 = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    f2 = torch.tensor([[0.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    perm = torch.tensor([1, 2, 0])
    loss, _, _ = task_contrastive(f1, f2, perm, "squared_distance")
    expected = 0.0
    for i in range(3):
        l_inner = float(((f1[i] - f2[i] + 1e-6) ** 2).sum())
        l_cross = float(((f1[i] - f2[perm[i]] + 1e-6) ** 2).sum())
        expected += math.log(1 + math.exp(-l_cross)) + math.log(1 + math.exp(l_inner))  # Eq. (8)
    assert loss.item() == pytest.approx(expected / 3, rel=1e-6)


@pytest.mark.parametrize("form", ["elementwise", "squared_distance"])
def test_contrastive_loss_is_finite_where_the_naive_form_overflows(form):
    f1, f2 = torch.zeros(4, 16), torch.full((4, 16), 50.0)  # d² = 2500: exp overflows in fp32
    assert torch.isinf(official_elementwise(f1, f2, torch.tensor([1, 2, 3, 0])))
    loss, _, _ = task_contrastive(f1, f2, torch.tensor([1, 2, 3, 0]), form)
    assert torch.isfinite(loss)
    f1.requires_grad_(True)
    task_contrastive(f1, f2, torch.tensor([1, 2, 3, 0]), form)[0].backward()
    assert torch.isfinite(f1.grad).all()


def test_loss_floor_and_ordering():
    same = torch.rand(4, 8)
    far = same + 10 * torch.arange(4.0)[:, None]  # tasks far apart, halves identical
    loss, d_in, d_cross = task_contrastive(far, far.clone(), torch.tensor([1, 0, 3, 2]))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-4)  # the official form's floor is ln 2
    assert d_in.item() < 1e-5 < d_cross.item()
    collapsed, _, _ = task_contrastive(same, same.roll(1, 0), torch.tensor([1, 0, 3, 2]))
    assert collapsed.item() > loss.item()


def test_derangement_has_no_fixed_point_and_is_seeded():
    for seed in range(20):
        p = derangement(5, torch.Generator().manual_seed(seed))
        assert sorted(p.tolist()) == list(range(5)) and all(p[i] != i for i in range(5))
    a = derangement(8, torch.Generator().manual_seed(3))
    assert torch.equal(a, derangement(8, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        derangement(1)


def test_info_nce_is_minus_log_softmax_of_the_positive():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    expected = -(torch.log_softmax(logits, dim=1)[:, 0]).mean()
    torch.testing.assert_close(info_nce(logits, torch.zeros(2, dtype=torch.long)), expected)


def test_l1_is_on_the_255_scale():
    assert l1_255(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 2 / 255)).item() == pytest.approx(2.0)
