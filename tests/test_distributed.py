"""Gradient averaging that overlaps backward (``train.distributed.GradientAverager``) on two real gloo ranks
(torch.distributed processes, no Ray): for every family's step (plain SR, CMDSR alternating and joint, CDSR with
its encoder-only stage and a MoCo queue across ranks) the bucketed, hook-driven averaging trains exactly the
weights that the flat all-reduce after backward (the previous implementation, kept here as the reference)
trains; both ranks hold the same weights; a NaN loss on one rank makes both skip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from blindsr.config import ModelConfig, build_config
from blindsr.models import Family, build_model, family_of
from blindsr.train.distributed import GradientAverager, all_gather_cat, buckets
from blindsr.train.trainer import make_step

CASES = {  # name: (preset, overrides)
    "srresnet": ("cmdsr_smoke", []),  # the CMDSR smoke run's data, its BaseNet alone
    "cmdsr_alternating": ("cmdsr_smoke", ["optim.t0=2"]),
    "cmdsr_joint": ("cmdsr_smoke", ["optim.t0=0"]),
    "cdsr_pretrain_then_joint": ("cdsr_smoke", ["optim.pretrain_steps=1"]),
}
STEPS = 3


class FlatAverager:
    """The reference: backward, then one flat all-reduce of every gradient (and the finite flag) after it."""

    def backward(self, params, loss, backward) -> bool:
        backward(loss)
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [finite])
        dist.all_reduce(flat)
        flat[:-1].div_(dist.get_world_size())
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
            offset += g.numel()
        return bool(flat[-1].item() == dist.get_world_size())


def train(case: str, rank: int, averager, nan_at: int | None = None):
    """STEPS steps of ``case`` on this rank's own batches; returns (weights and buffers, skipped steps)."""
    preset, overrides = CASES[case]
    cfg = build_config(preset, overrides=overrides)
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(name="srresnet", n_feats=16, n_blocks=1) if case == "srresnet" else cfg.model, cfg.scale
    )
    if family_of(model) is Family.CONTRASTIVE:
        model.encoder.key_gather = all_gather_cat
    step = make_step(model, cfg.optim, cfg.loss, torch.Generator().manual_seed(0), averager=averager)
    gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    k, m, p = cfg.data.tasks_per_step, cfg.data.patches_per_task, cfg.data.patch_size
    for i in range(STEPS):
        lr = torch.rand((k, m, 3, p, p), generator=gen)
        hr = torch.rand((k, m, 3, p * cfg.scale, p * cfg.scale), generator=gen)
        if nan_at == i and rank == 1:
            hr[0, 0, 0, 0, 0] = float("nan")
        step(lr, hr)
    return {
        name: t.detach().clone() for name, t in [*model.named_parameters(), *model.named_buffers()]
    }, step.nonfinite_total


def ranks(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {}
    for case in CASES:
        results[case] = {
            "bucketed": train(case, rank, GradientAverager(bucket_bytes=16 * 1024)),  # several buckets per update
            "flat": train(case, rank, FlatAverager()),
        }
    results["nan"] = train("cmdsr_alternating", rank, GradientAverager(bucket_bytes=16 * 1024), nan_at=1)
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranks")
    mp.spawn(ranks, args=(2, str(folder / "init"), str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_bucketed_averaging_trains_the_weights_the_flat_all_reduce_trains(two_ranks, case):
    for rank in (0, 1):
        got, skipped = two_ranks[rank][case]["bucketed"]
        want, _ = two_ranks[rank][case]["flat"]
        assert skipped == 0
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got), f"{case}, rank {rank}"
    first, second = two_ranks[0][case]["bucketed"][0], two_ranks[1][case]["bucketed"][0]
    differ = {k for k in first if not torch.equal(first[k], second[k])}
    # every weight and the MoCo queue agree; BatchNorm's running statistics are each rank's own (rank 0 saves)
    assert all(k.endswith(("running_mean", "running_var")) for k in differ), f"{case}: {sorted(differ)[:5]}"
    alone, _ = train(case, 0, GradientAverager())  # one rank, its own data only: different weights
    assert any(not torch.equal(alone[k], first[k]) for k in alone)


def test_a_nan_loss_on_one_rank_makes_both_skip_the_same_update(two_ranks):
    (w0, skipped0), (w1, skipped1) = two_ranks[0]["nan"], two_ranks[1]["nan"]
    assert skipped0 == skipped1 >= 1
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_buckets_run_backwards_and_respect_the_size():
    params = [torch.nn.Parameter(torch.zeros(n)) for n in (10, 300, 20, 5000, 7)]
    plan = buckets(params, bucket_bytes=4 * 400)
    assert [[p.numel() for p in b] for b in plan] == [[7], [5000], [20, 300, 10]]
