"""How a step runs: mixed precision (autocast, fp32 master weights, fp32 losses), the EMA of the weights
(its formula, its checkpoint file, what inference loads), channels_last and ``torch.compile`` of the SR
network with its eager fallback. CPU here; the ``gpu`` tests repeat what only CUDA has."""

from __future__ import annotations

import logging

import pytest
import torch

from blindsr.artifacts import checkpoint
from blindsr.config import ConfigError, LossConfig, ModelConfig, OptimConfig, build_config
from blindsr.degradations.spec import DegradationSpec
from blindsr.models import build_model
from blindsr.models.family import sr_network
from blindsr.train.acceleration import compile_forward
from blindsr.train.ema import EMA
from blindsr.train.precision import Precision
from blindsr.train.trainer import build_trainer, make_step
from blindsr.train.trainer import save as save_trainer
from helpers import TINY

SPECS = [
    DegradationSpec(scale=2, kernel="iso", kernel_size=7, sigma=0.4, noise=0.0),
    DegradationSpec(scale=2, kernel="iso", kernel_size=7, sigma=2.0, noise=10.0, seed=1),
]
FAMILIES = [
    "srresnet",
    "cmdsr",
    "cdsr",
    "dasr",
    "cdcl",
    "kdsr",
]  # plain, conditional, contrastive ×2, multicrop, distilled


def tiny_train(name: str, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **TINY), 2).to(device).train()


def step_of(model, precision="fp32", ema=None, device="cpu"):
    optim = OptimConfig(lr=1e-3, lr_condition=1e-3, t0=1)
    return make_step(model, optim, LossConfig(), torch.Generator().manual_seed(0),
                     precision=Precision(precision, device), ema=ema)  # fmt: skip


def first_conv_dtype(model: torch.nn.Module, run) -> torch.dtype:
    """The dtype the SR network's first convolution computes in during ``run()``."""
    seen = []
    conv = next(m for m in sr_network(model).modules() if isinstance(m, torch.nn.Conv2d) or hasattr(m, "scaled_weight"))
    handle = conv.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_step_runs_in_bf16_keeps_fp32_weights_and_learns(task_batch, name):
    lr, hr = task_batch(SPECS, m=4)
    fp32_model, bf16_model = tiny_train(name), tiny_train(name)
    first_fp32 = step_of(fp32_model)(lr, hr)["train/loss_l1"]
    step = step_of(bf16_model, "bf16")
    assert first_conv_dtype(bf16_model, lambda: step(lr, hr)) is torch.bfloat16  # autocast is on
    losses = [step(lr, hr)["train/loss_l1"] for _ in range(12)]
    assert all(torch.isfinite(torch.tensor(losses)))  # the papers' 0–255 scale stays finite
    assert all(p.dtype is torch.float32 for p in bf16_model.parameters())
    assert min(losses[-3:]) < losses[0]  # it learns
    fresh = tiny_train(name)
    bf16_first = step_of(fresh, "bf16")(lr, hr)["train/loss_l1"]
    assert bf16_first == pytest.approx(first_fp32, rel=0.03)  # same weights, same loss up to bf16 rounding


def test_fp16_needs_cuda_and_bad_values_name_the_key():
    with pytest.raises(ValueError, match="train.precision=fp16 needs a CUDA device, this worker trains on cpu"):
        Precision("fp16", "cpu")
    with pytest.raises(ConfigError, match=r"train.precision in --set: fp16 needs CUDA, but scaling.use_gpu is false"):
        build_config("cdsr_smoke", overrides=["scaling.use_gpu=false", "train.precision=fp16"])
    with pytest.raises(ConfigError, match=r"train.precision in --set: 'fp8' is not a valid choice.*'bf16'"):
        build_config(overrides=["train.precision=fp8"])
    for bad in ("2", "-0.1", "1"):
        with pytest.raises(ConfigError, match=rf"train.ema_decay in --set: must be in \[0, 1\).*got {bad}"):
            build_config(overrides=[f"train.ema_decay={bad}"])


@pytest.mark.parametrize("name", ["srresnet", "cdsr"])  # cdsr: BatchNorm statistics and the MoCo queue
def test_ema_follows_its_formula_and_copies_buffers(task_batch, name):
    lr, hr = task_batch(SPECS, m=4)
    model, decay = tiny_train(name), 0.7
    reference = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, decay)
    step = step_of(model, ema=ema)
    for _ in range(3):
        step(lr, hr)
        reference = [decay * r + (1 - decay) * p.detach() for r, p in zip(reference, model.parameters(), strict=True)]
    assert ema.updates == 3
    for r, e in zip(reference, ema.module.parameters(), strict=True):
        torch.testing.assert_close(e, r, rtol=1e-6, atol=1e-7)
        assert not e.requires_grad
    assert any(not torch.equal(e, p) for e, p in zip(ema.module.parameters(), model.parameters(), strict=True))
    for e, b in zip(ema.module.buffers(), model.buffers(), strict=True):
        assert torch.equal(e, b)
    assert step.eval_model is ema.module and not ema.module.training


def test_checkpoint_keeps_both_weights_and_inference_loads_the_ema(tmp_path, task_batch):
    cfg = build_config("cmdsr_smoke", overrides=["train.ema_decay=0.5"])
    trainer = build_trainer(cfg)
    lr, hr = task_batch(SPECS, m=cfg.data.patches_per_task)
    trainer.step(lr, hr)
    save_trainer(tmp_path, cfg, trainer, {"step": 1})
    saved = checkpoint.read(tmp_path)
    assert saved.ema is not None and saved.trainer["ema_updates"] == 1
    _cfg, loaded = checkpoint.load_model(tmp_path)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, trainer.eval_model.state_dict()[key]), key
    assert not torch.equal(loaded.state_dict()["base.head.weight"], trainer.model.state_dict()["base.head.weight"])


@pytest.mark.parametrize("name", FAMILIES)
def test_channels_last_trains_like_the_contiguous_model(task_batch, name):
    lr, hr = task_batch(SPECS, m=4)
    plain, nhwc = tiny_train(name), tiny_train(name).to(memory_format=torch.channels_last)
    plain_step, nhwc_step = step_of(plain), step_of(nhwc)
    for _ in range(3):  # losses agree to float rounding (Adam may flip the sign of a near-zero update)
        assert nhwc_step(lr, hr)["train/loss_l1"] == pytest.approx(plain_step(lr, hr)["train/loss_l1"], rel=1e-4)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) for p in nhwc.parameters())


def test_a_network_that_does_not_compile_runs_eagerly_with_one_logged_reason(caplog):
    def refuse(gm, example_inputs):
        raise RuntimeError("this backend compiles nothing")

    model = tiny_train("srresnet").eval()
    x = torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        expected = model(x)
        compile_forward(model, "SRResNet", backend=refuse)
        with caplog.at_level(logging.WARNING, logger="blindsr.train.acceleration"):
            first, second = model(x), model(x)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)
    warnings = [r.getMessage() for r in caplog.records if r.name == "blindsr.train.acceleration"]
    assert len(warnings) == 1 and "SRResNet runs eagerly" in warnings[0] and "compiles nothing" in warnings[0]
    del model.forward  # undone: the class's forward again
    assert "forward" not in vars(model)


@pytest.mark.slow
def test_compiled_cmdsr_trains_like_eager(task_batch):
    """Inductor on CPU (a C++ compiler): CMDSR's BaseNet with its conv(x·f) modulation compiles and its
    steps equal eager's to float tolerance; state_dict keys are unchanged."""
    cfg = build_config("cmdsr_smoke", overrides=["train.compile=true"])
    eager = build_trainer(build_config("cmdsr_smoke"))
    compiled = build_trainer(cfg)
    assert compiled.accelerated == ["torch.compile(SRResNet)"] and "forward" in vars(compiled.model.base)
    lr, hr = task_batch(SPECS, m=cfg.data.patches_per_task)
    for _ in range(2):
        a, b = eager.step(lr, hr)["train/loss_l1"], compiled.step(lr, hr)["train/loss_l1"]
        assert b == pytest.approx(a, rel=1e-4)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_step_with_ema_and_compile(task_batch, precision):
    lr, hr = (t.cuda() for t in task_batch(SPECS, m=4))
    cfg = build_config("cdsr_smoke", overrides=[f"train.precision={precision}", "train.ema_decay=0.9",
                                                 "train.compile=true", "train.channels_last=true"])  # fmt: skip
    trainer = build_trainer(cfg, "cuda")
    assert trainer.describe() == f"{precision}, channels_last, torch.compile(CDSRGenerator)"
    losses = [trainer.step(lr[:, :2], hr[:, :2])["train/loss_l1"] for _ in range(6)]
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-2:]) < losses[0]
    assert trainer.step.ema.updates == 6 and next(trainer.eval_model.parameters()).is_cuda
