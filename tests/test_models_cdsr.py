"""CDSR and DASR: the specs' exact parameter counts, DQA / DA_conv / CSC / MoCo against hand-written
references, degradation sensitivity of the encoder, non-square shapes and every ablation switch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blindsr.config import Config, ConfigError, ModelConfig, from_dict
from blindsr.degradations.pipeline import apply
from blindsr.degradations.presets import TEST_PRESETS, cdsr9_kernels
from blindsr.models import build_model, count_parameters
from blindsr.models.cdsr import CDSR, RRDBSFT, CDSRGenerator
from blindsr.models.cdsr_encoder import CodebookAttention, Encoder
from blindsr.models.dasr import DAG, DASR, DASRGenerator
from blindsr.models.fusion import DQA, AdaIN, CrossModalAttention, DAConv, FuseBLK
from blindsr.models.moco import MoCo


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- parameter counts (spec/cdsr.md (b), spec/cmdsr_dasr_basicsr.md §2.1–2.3) -------------------------


@pytest.mark.parametrize(("n_blocks", "total"), [(2, 5_241_238), (5, 8_237_983), (10, 13_232_558)])
def test_cdsr_x2_parameter_counts_match_the_paper(n_blocks, total):
    model = CDSR(scale=2, n_blocks=n_blocks)
    assert count_parameters(model) == total  # Table 6: 5.24M / 8.24M / 13.23M
    assert n_params(model) == total + 2_934_592  # + the frozen key encoder (16.17M at 10 blocks)
    assert count_parameters(model.encoder) == 2_934_592
    assert model.encoder.queue.shape == (256, 8192) and "encoder.queue" in model.state_dict()
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    enc, gen = {id(p) for p in model.encoder_parameters()}, {id(p) for p in model.generator_parameters()}
    assert not enc & gen and enc | gen == trainable


def test_lpe_and_csc_part_counts():
    enc = Encoder("lpe")
    assert count_parameters(enc) == 2_934_592
    assert count_parameters(enc.features.pixel) == 1_777_472
    assert count_parameters(enc.features.pixel[4]) == 1_605_888 + 2 * 256  # 7×7 128→256 conv + its BN
    assert count_parameters(enc.features.patch) == 434_688
    assert count_parameters(enc.features.fusion) == 197_120
    assert count_parameters(enc.csc.codebook) == 262_144
    assert count_parameters(enc.csc.fc_q) + count_parameters(enc.csc.fc_k) == 131_584
    assert count_parameters(enc.head) == 131_584


def test_rrdb_sft_and_dqa_counts():
    block = RRDBSFT()
    assert count_parameters(block) == 998_915
    assert count_parameters(block.sft) == 82_241
    assert count_parameters(block.fuse) == 197_250
    assert count_parameters(block.rdbs) == 3 * 239_808
    dqa = DQA()
    assert count_parameters(dqa) == 61_697
    assert count_parameters(dqa.attention) == 12_481
    assert count_parameters(dqa.kernel) == 40_960
    assert count_parameters(dqa.conv) == 4_160
    assert count_parameters(dqa.ca) == 4_096


@pytest.mark.parametrize(("scale", "upsampler"), [(2, 6_924), (3, 15_579), (4, 27_696)])
def test_cdsr_generator_fixed_part_and_upsampler(scale, upsampler):
    gen = CDSRGenerator(scale, n_blocks=0)
    assert count_parameters(gen.upsample) == upsampler
    assert count_parameters(gen.compress) == 263_172
    assert count_parameters(gen.conv_first) == 1_792 and count_parameters(gen.trunk_conv) == 36_928
    assert count_parameters(gen) == 308_816 - 6_924 + upsampler
    if scale == 4:
        assert count_parameters(gen) + 2_934_592 == 3_264_180  # spec table: ×4 fixed part


@pytest.mark.parametrize(("scale", "total"), [(4, 4_690_523), (3, 4_727_451), (2, 4_542_811)])
def test_dasr_generator_counts(scale, total):
    # the spec's totals include the official code's 24 frozen MeanShift conv values (two 3×3 1×1 convs
    # with bias); here the mean is a 3-value buffer, so the trainable count is 24 lower
    assert count_parameters(DASRGenerator(scale)) == total - 24


def test_dasr_part_counts():
    assert count_parameters(DAConv(reduction=8)) == 46_144
    assert count_parameters(FuseBLK(64, "daconv")) == 166_144
    assert count_parameters(DAG()) == 867_648
    model = DASR(scale=4)
    enc = model.encoder.encoder_q
    assert count_parameters(enc.features) == 1_147_200 and count_parameters(enc.head) == 131_584
    assert count_parameters(model.generator) + count_parameters(enc.features) == 5_837_723 - 24  # paper's 5.8M
    assert count_parameters(model) == 4_690_499 + 1_278_784


# ---- fusion modules ---------------------------------------------------------------------------------


def dynamic_reference(conv: DAConv, x: torch.Tensor, code: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """DA_conv written per sample from the weights: depthwise conv with kernels from ``code``, LReLU,
    1×1 conv, plus x times the channel gate from ``d``."""
    out = []
    w1, w2 = conv.kernel[0].weight, conv.kernel[2].weight
    c = x.shape[1]
    for b in range(x.shape[0]):
        kernels = (w2 @ F.leaky_relu(w1 @ code[b], 0.1)).view(c, 1, 3, 3)
        y = F.leaky_relu(F.conv2d(x[b : b + 1], kernels, padding=1, groups=c), 0.1)
        y = F.conv2d(y, conv.conv.weight, conv.conv.bias)
        ca1, ca2 = conv.ca[0].weight.flatten(1), conv.ca[2].weight.flatten(1)
        gate = torch.sigmoid(ca2 @ F.leaky_relu(ca1 @ d[b], 0.1))
        out.append(y + x[b : b + 1] * gate[None, :, None, None])
    return torch.cat(out)


def attention_reference(att: CrossModalAttention, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(d)
    for b in range(d.shape[0]):
        q = att.query.weight @ x[b].mean(dim=(1, 2)) + att.query.bias
        k = att.key.weight @ d[b] + att.key.bias
        v = att.value.weight @ d[b] + att.value.bias
        for i in range(d.shape[1]):
            w = torch.exp(q[i] * k - (q[i] * k).max())
            out[b, i] = att.gamma * (w / w.sum() * v).sum() + d[b, i]
    return out


def test_dqa_with_gamma_zero_is_da_conv_and_matches_a_per_sample_loop():
    torch.manual_seed(0)
    dqa = DQA(16, reduction=2)
    x, d = torch.randn(3, 16, 9, 7), torch.rand(3, 16)
    assert dqa.attention.gamma.item() == 0.0
    ref = dynamic_reference(dqa, x, d, d)
    torch.testing.assert_close(dqa(x, d), ref, atol=1e-5, rtol=1e-5)
    dyn = DAConv(16, reduction=2)
    dyn.load_state_dict({k: v for k, v in dqa.state_dict().items() if not k.startswith("attention.")})
    torch.testing.assert_close(dyn(x, d), ref, atol=1e-5, rtol=1e-5)

    with torch.no_grad():
        dqa.attention.gamma.fill_(0.7)
    z = attention_reference(dqa.attention, x, d)
    torch.testing.assert_close(dqa.attention(x, d), z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dqa(x, d), dynamic_reference(dqa, x, z, d), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(dqa(x, d), ref, atol=1e-4)


def test_adain_modulates_normalised_or_raw_features():
    torch.manual_seed(1)
    x, d = torch.randn(2, 8, 6, 5) * 3 + 1, torch.rand(2, 8)
    for instance_norm in (True, False):
        adain = AdaIN(8, instance_norm)
        with torch.no_grad():
            adain.mlp[2].weight.zero_()
            adain.mlp[2].bias.copy_(torch.cat([torch.full((8,), 1.0), torch.full((8,), 0.5)]))  # scale 2, bias ½
        base = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
        expected = 2 * (base if instance_norm else x) + 0.5
        torch.testing.assert_close(adain(x, d), expected, atol=1e-4, rtol=1e-4)


def test_codebook_attention_is_softmax_of_projected_keys_over_the_raw_codebook():
    csc = CodebookAttention(size=3, dim=2)
    with torch.no_grad():
        csc.codebook.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
        csc.fc_q.weight.copy_(torch.eye(2))
        csc.fc_q.bias.zero_()
        csc.fc_k.weight.copy_(2 * torch.eye(2))  # keys are 2·codebook, values stay the raw codebook
        csc.fc_k.bias.copy_(torch.tensor([0.0, 1.0]))
    f = torch.tensor([[0.5, -0.25]])
    # keys = [[2, 1], [0, 5], [-2, -1]]; logits = f·keys = [0.75, -1.25, -0.75]
    w = [math.exp(0.75), math.exp(-1.25), math.exp(-0.75)]
    w = [v / sum(w) for v in w]
    expected = torch.tensor([[w[0] - w[2], 2 * w[1] - w[2]]])
    torch.testing.assert_close(csc(f), expected, atol=1e-6, rtol=1e-6)


# ---- MoCo ------------------------------------------------------------------------------------------


class ToyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(12, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.body(x.flatten(1))
        return e, self.head(e)


def test_momentum_update_and_logits():
    torch.manual_seed(2)
    moco = MoCo(ToyEncoder(), dim=4, queue_size=7, momentum=0.9, temperature=0.5)
    assert all(not p.requires_grad for p in moco.encoder_k.parameters())
    torch.testing.assert_close(moco.queue.norm(dim=0), torch.ones(7))
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(torch.randn_like(p))  # query and key encoders now differ
    old_k = [p.clone() for p in moco.encoder_k.parameters()]
    queue = moco.queue.clone()
    x_q, x_k = torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2)
    embedding, logits, labels = moco(x_q, x_k)

    for p_k, p_q, old in zip(moco.encoder_k.parameters(), moco.encoder_q.parameters(), old_k, strict=True):
        torch.testing.assert_close(p_k, 0.9 * old + 0.1 * p_q)
    q = F.normalize(moco.encoder_q(x_q)[1], dim=1)
    k = F.normalize(moco.encoder_k(x_k)[1], dim=1)  # after the update
    torch.testing.assert_close(embedding, moco.encoder_q(x_q)[0])
    assert logits.shape == (3, 8) and labels.dtype == torch.long and labels.tolist() == [0, 0, 0]
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.5)  # positive in column 0
    torch.testing.assert_close(logits[:, 1:], q @ queue / 0.5)  # negatives: the queue before enqueuing
    torch.testing.assert_close(moco.queue[:, :3], k.t())
    assert moco.queue_ptr.item() == 3
    F.cross_entropy(logits, labels).backward()  # enqueue after the logits did not break autograd
    assert moco.encoder_q.body.weight.grad is not None and moco.encoder_k.body.weight.grad is None


def test_queue_is_a_ring_buffer_for_any_batch_size():
    moco = MoCo(ToyEncoder(), dim=4, queue_size=5)
    keys = torch.arange(1, 13, dtype=torch.float32).view(3, 4)
    moco.enqueue(keys)  # columns 0, 1, 2
    moco.enqueue(-keys)  # columns 3, 4, then wraps to 0
    assert moco.queue_ptr.item() == 1
    torch.testing.assert_close(moco.queue[:, [3, 4, 0, 1, 2]], torch.cat([-keys, keys[1:]]).t())
    many = torch.randn(7, 4)  # more keys than slots: the last 5 survive, the pointer advances by 7
    moco.enqueue(many)
    assert moco.queue_ptr.item() == (1 + 7) % 5
    torch.testing.assert_close(moco.queue[:, [(1 + i) % 5 for i in range(2, 7)]], many[2:].t())


def test_eval_mode_leaves_the_state_alone_and_gathered_keys_are_enqueued():
    torch.manual_seed(3)
    moco = MoCo(ToyEncoder(), dim=4, queue_size=6)
    x_q, x_k = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    state = {k: v.clone() for k, v in moco.state_dict().items()}
    moco.eval()
    moco(x_q, x_k)
    assert all(torch.equal(v, moco.state_dict()[k]) for k, v in state.items())
    moco.train()
    moco.key_gather = lambda keys: torch.cat([keys, -keys])  # two workers' keys, in rank order
    moco(x_q, x_k)
    k = F.normalize(moco.encoder_k(x_k)[1], dim=1)
    assert moco.queue_ptr.item() == 4
    torch.testing.assert_close(moco.queue[:, :4], torch.cat([k, -k]).t())


# ---- whole models ----------------------------------------------------------------------------------


def test_encoder_tells_two_degradations_of_the_same_image_apart(photo):
    torch.manual_seed(4)
    hr = photo[100:196, 150:246]  # 96×96 → 48×48 LR at ×2, under the 9 CDSR test kernels
    specs = TEST_PRESETS["cdsr9"](2)
    assert list(specs) == [f"{s1:.1f}_{s2:.1f}_{th:.1f}" for s1, s2, th in cdsr9_kernels(2)]
    lr = torch.stack([torch.from_numpy(apply(hr, s)).permute(2, 0, 1).float() / 255 for s in specs.values()])
    encoder = Encoder("lpe")
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # running statistics = those of the next batch
    with torch.no_grad():
        encoder(lr)
        encoder.eval()
        embedding, projection = encoder(lr)
        alone, _ = encoder(lr[:1])
    torch.testing.assert_close(alone, embedding[:1])  # eval: each image is encoded on its own
    for out in (embedding, projection):  # kernels (1, 1, 0) and (5, 5, 0) of the same HR crop
        gap = (out[0] - out[-1]).norm() / out.norm(dim=1).mean()
        assert gap > 0.01, gap


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_non_square_output_shapes(scale):
    torch.manual_seed(5)
    lr = torch.rand(2, 3, 23, 37)
    for model in (CDSR(scale, n_blocks=1, moco_queue=8), DASR(scale, n_groups=1, n_blocks=1, moco_queue=8)):
        with torch.no_grad():
            assert model.eval()(lr).shape == (2, 3, 23 * scale, 37 * scale)


def test_patch_branch_rejects_inputs_smaller_than_one_patch():
    model = CDSR(2, n_blocks=1, moco_queue=8).eval()
    with pytest.raises(ValueError, match="at least 12×12 pixels, got 11×20"):
        model(torch.rand(1, 3, 11, 20))
    pixel_only = CDSR(2, n_blocks=1, use_patch_branch=False, moco_queue=8).eval()
    assert pixel_only(torch.rand(1, 3, 8, 9)).shape == (1, 3, 16, 18)
    with pytest.raises(ValueError, match="at least one of"):
        CDSR(2, use_pixel_branch=False, use_patch_branch=False)


ABLATIONS = [
    {},
    {"fusion": "adain"},
    {"fusion": "dynconv"},
    {"use_patch_branch": False},
    {"use_pixel_branch": False},
    {"encoder": "dasr"},
    {"encoder": "manet"},
    {"use_codebook": False, "codebook_size": 7},
    {"codebook_size": 16},
    {"trunk": "dasr"},
]


@pytest.mark.parametrize("switches", ABLATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "cdsr")
def test_every_ablation_builds_trains_and_infers(switches):
    torch.manual_seed(6)
    cfg = ModelConfig(name="cdsr", n_blocks=1, moco_queue=6, **switches)
    model = build_model(cfg, scale=2)
    enc = model.encoder.encoder_q
    assert isinstance(enc.csc, nn.Identity) != cfg.use_codebook
    if cfg.use_codebook:
        assert enc.csc.codebook.num_embeddings == cfg.codebook_size
    lr_q, lr_k, hr = torch.rand(4, 3, 16, 18), torch.rand(4, 3, 16, 18), torch.rand(4, 3, 32, 36)
    sr, logits, labels = model.contrastive_forward(lr_q, lr_k)
    assert sr.shape == hr.shape and logits.shape == (4, 7) and labels.shape == (4,)
    (F.l1_loss(sr, hr) + F.cross_entropy(logits, labels)).backward()
    assert all(p.grad is not None for p in model.encoder_parameters() + model.generator_parameters())
    assert all(p.grad is None for p in model.encoder.encoder_k.parameters())
    with torch.no_grad():
        assert model.eval()(lr_q).shape == hr.shape


def test_encoder_pretraining_path_skips_the_generator():
    torch.manual_seed(8)
    model = DASR(2, n_groups=1, n_blocks=1, moco_queue=5)
    logits, labels = model.contrast(torch.rand(4, 3, 12, 10), torch.rand(4, 3, 12, 10))
    F.cross_entropy(logits, labels).backward()
    assert logits.shape == (4, 6) and model.encoder.queue_ptr.item() == 4
    assert all(p.grad is not None for p in model.encoder_parameters())
    assert all(p.grad is None for p in model.generator_parameters())


def test_fusion_switch_fills_both_slots():
    for fusion, cls in (("dqa", DQA), ("dynconv", DAConv), ("adain", AdaIN), ("daconv", DAConv)):
        block = FuseBLK(8, fusion)
        assert type(block.da_conv1) is cls and type(block.da_conv2) is cls
    assert FuseBLK(64, "dynconv").da_conv1.ca[0].out_channels == 32  # CDSR's reduction 2, DASR's is 8
    with pytest.raises(ValueError, match="unknown fusion"):
        FuseBLK(8, "film")


@pytest.mark.parametrize("name", ["cdsr", "dasr"])
def test_registry_and_state_dict_round_trip(name):
    torch.manual_seed(7)
    cfg = ModelConfig(name=name, n_blocks=1, moco_queue=10, moco_momentum=0.5, moco_temperature=0.2)
    model = build_model(cfg, scale=3)
    assert model.encoder.queue.shape == (256, 10)
    assert (model.encoder.momentum, model.encoder.temperature) == (0.5, 0.2)
    model.contrastive_forward(torch.rand(2, 3, 14, 13), torch.rand(2, 3, 14, 13))  # changes the buffers
    clone = build_model(cfg, scale=3)
    clone.load_state_dict(model.state_dict())
    lr = torch.rand(1, 3, 15, 12)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(lr), model.eval()(lr))
    assert torch.equal(clone.encoder.queue, model.encoder.queue)


@pytest.mark.gpu
def test_cuda_training_step():
    model = CDSR(2, n_blocks=1, moco_queue=12).cuda()
    out = model.contrastive_forward(torch.rand(4, 3, 24, 20, device="cuda"), torch.rand(4, 3, 24, 20, device="cuda"))
    F.cross_entropy(out.logits, out.labels).backward()
    assert out.sr.device.type == "cuda" and model.encoder.queue_ptr.item() == 4


@pytest.mark.parametrize("shared", [False, True])
def test_encoder_pretraining_follows_the_official_schedule(shared):
    """DASR's stage 1: encoder-only InfoNCE at lr_pretrain, ×0.1 at each pretrain milestone (official: epoch 60 of
    100); then L1 + InfoNCE at lr with the milestones counted from stage 2's start. Shared: one Adam whose
    encoder moments carry into stage 2, as the official trainer's; otherwise a stage-1 Adam of its own."""
    from blindsr.config import LossConfig, OptimConfig
    from blindsr.train.trainer import make_step

    torch.manual_seed(9)
    model = DASR(2, n_groups=1, n_blocks=1, moco_queue=8)
    cfg = OptimConfig(
        lr=1e-4, lr_pretrain=1e-3, pretrain_steps=4, pretrain_milestones=[2], milestones=[3], gamma=0.5,
        pretrain_shared_optimizer=shared,
    )  # fmt: skip
    step = make_step(model, cfg, LossConfig())
    assert set(step.optimizers) == ({"sr"} if shared else {"sr", "encoder"})
    generator = [p.detach().clone() for p in model.generator_parameters()]
    used = []
    for i in range(1, 9):
        opt = step.optimizers["sr" if i > 4 or shared else "encoder"]
        used.append(opt.param_groups[0]["lr"])
        step(torch.rand(4, 2, 3, 12, 12), torch.rand(4, 2, 3, 24, 24))
        if i == 4:  # stage 1 trained the encoder alone
            assert all(torch.equal(a, b) for a, b in zip(generator, model.generator_parameters(), strict=True))
    assert used == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 5e-5])
    first = next(iter(model.encoder_parameters()))
    assert int(step.optimizers["sr"].state[first]["step"]) == (8 if shared else 4)  # moments carried over or not
    with pytest.raises(ConfigError, match=r"optim.pretrain_milestones.*must lie in \(0, pretrain_steps=4\)"):
        from_dict(Config, {"optim": {"pretrain_steps": 4, "pretrain_milestones": [4]}})
