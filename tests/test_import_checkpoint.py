"""Official checkpoints: state dicts of the official CMDSR and DASR networks (tests/reference, MIT, verbatim) with
random weights, imported by jobs/import_checkpoint.py into a checkpoint folder and the registry, give the
official network's output (≤ 1e-4 on [0, 1], batch 1); bad files are refused by name."""

from __future__ import annotations

import types
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from blindsr.infer import load
from blindsr.models.cmdsr import self_support
from helpers import job
from reference.cmdsr_official import CMDSR as OfficialCMDSR
from reference.dasr_official import BlindSR as OfficialDASR


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Biases and BN statistics drawn at random (the official inits leave them 0 and 1), modulation weights
    shrunk so the channel scales stay near 1 as in a trained network: a key copied to the wrong place shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point() or name.startswith(("G.sub_mean", "G.add_mean")):
                continue
            if name.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith(("bias", "running_mean")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif ".modulations." in name or ".condition." in name:
                p.mul_(0.01)
    return model.eval()


def official_cmdsr(scale: int) -> torch.nn.Module:
    args = types.SimpleNamespace(
        scale_factor=scale, use_support_Mod=True, task_size=1, support_size=4, input_channels=3, kernel_size=3,
        channels=16, n_block=3, n_conv_each_block=2, residual_lr=1, conv_index="22", use_pretrained_sr_net=False,
    )  # fmt: skip
    return randomised(OfficialCMDSR(args), seed=scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_cmdsr_imports_and_equals_the_official_network(scale, tmp_path, photo, capsys):
    official = official_cmdsr(scale)
    torch.save(official.state_dict(), tmp_path / "cmdsr.pt")
    assert job("import_checkpoint").main([str(tmp_path / "cmdsr.pt"), str(tmp_path / "ckpt")]) == 0
    assert f"imported official cmdsr x{scale}" in capsys.readouterr().out
    ours = load(str(tmp_path / "ckpt"), device="cpu")
    lr = torch.from_numpy(np.ascontiguousarray(photo[:40, :36])).permute(2, 0, 1)[None].float() / 255
    support = self_support(lr, 4, 16, torch.Generator().manual_seed(1))  # (1, 4, 3, 16, 16)
    with torch.no_grad():
        expected = official(lr * 255, support.reshape(1, 12, 16, 16) * 255) / 255  # the official reads 0–255
        got = ours(lr, support)
    assert got.shape == expected.shape == (1, 3, 40 * scale, 36 * scale)
    assert 0.01 < expected.std() and expected.abs().max() < 10  # a picture-like range, not an overflow
    assert (got - expected).abs().max() <= 1e-4


def test_official_dasr_registers_as_official_and_equals_the_official_network(tmp_path, photo, capsys):
    official = randomised(OfficialDASR(types.SimpleNamespace(scale=[2])), seed=7)
    released = {k: v for k, v in official.state_dict().items() if not k.startswith(("E.encoder_k", "E.queue"))}
    torch.save({"model": {f"module.{k}": v for k, v in released.items()}}, tmp_path / "model_600.pt")  # wrapped
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [str(tmp_path / "model_600.pt"), str(tmp_path / "ckpt"), "--register", "dasr_x2", "--tracking-uri", uri]
    assert job("import_checkpoint").main(args) == 0, capsys.readouterr().err
    assert "as models:/dasr_x2@official" in capsys.readouterr().out
    assert str(mlflow.MlflowClient(uri).get_model_version_by_alias("dasr_x2", "official").version) == "1"
    ours = load("models:/dasr_x2@official", uri, "cpu")
    lr = torch.from_numpy(np.ascontiguousarray(photo[:32, :44])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = official(lr * 255) / 255
        got = ours(lr)
    assert 0.01 < expected.std() and expected.abs().max() < 10
    assert (got - expected).abs().max() <= 1e-4
    state = ours.state_dict()  # the released file has no key encoder: MoCo's initialisation, a copy of the query
    assert torch.equal(state["encoder.encoder_k.head.2.weight"], state["encoder.encoder_q.head.2.weight"])

    out = tmp_path / "eval"
    evaluate = ["models:/dasr_x2@official", "--protocol", "bicubic", "--crop", "48", "--tracking-uri", uri]
    assert job("evaluate").main([*evaluate, "--out", str(out), "--cache", ""]) == 0
    assert "| models:/dasr_x2@official |" in (out / "table.md").read_text()


def test_official_cdsr_layout_is_the_papers_model_and_imports_whole(tmp_path, photo, capsys):
    """CDSR has no licence, so no official code here: models/official.py writes its state-dict layout down from
    reading it. That table holds the spec's measured totals (×4, 10 blocks: query encoder 2,934,592, one
    RRDB-SFT block 998,915, encoder + generator 13,253,330), and a state dict built from it imports into
    blindsr's CDSR with every key used, at ×2 and ×4, the encoder reading [0, 1] like the official."""
    from blindsr.artifacts.official import cdsr_layout

    buffers = ("running_mean", "running_var", "num_batches_tracked", "queue", "queue_ptr")
    paper = {k: v for k, v in cdsr_layout(4).items() if not k.startswith("E.encoder_k") and not k.endswith(buffers)}
    count = {k: int(np.prod(v)) for k, v in paper.items()}
    assert sum(count.values()) == 13_253_330
    assert sum(n for k, n in count.items() if k.startswith("E.encoder_q")) == 2_934_592
    assert sum(n for k, n in count.items() if k.startswith("G.RRDB_trunk.3.")) == 998_915
    for scale in (2, 4):
        gen = torch.Generator().manual_seed(scale)
        state = {
            k: torch.zeros(s, dtype=torch.long) if k.endswith(("num_batches_tracked", "queue_ptr"))
            else 0.5 + torch.rand(s, generator=gen) if k.endswith("running_var")
            else 0.1 * torch.randn(s, generator=gen)
            for k, s in cdsr_layout(scale, n_blocks=2, codebook=32).items()
        }  # fmt: skip
        torch.save(state, tmp_path / f"cdsr_x{scale}.pth")
        out = tmp_path / f"ckpt{scale}"
        assert job("import_checkpoint").main([str(tmp_path / f"cdsr_x{scale}.pth"), str(out)]) == 0
        assert f"imported official cdsr x{scale}" in capsys.readouterr().out
        ours = load(str(out), device="cpu")
        assert ours.encoder.encoder_q.input_scale == 1.0
        mine = ours.state_dict()
        assert torch.equal(mine["generator.trunk.1.rdbs.2.convs.4.weight"], state["G.RRDB_trunk.1.RDB3.conv5.weight"])
        assert torch.equal(
            mine["encoder.encoder_k.features.patch.0.1.running_var"], state["E.encoder_k.pconv1.bn1.running_var"]
        )
        lr = torch.from_numpy(np.ascontiguousarray(photo[:24, :36])).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            assert ours(lr).shape == (1, 3, 24 * scale, 36 * scale)


def test_files_that_are_not_official_checkpoints_are_refused_by_name(tmp_path, capsys):
    def run(obj: object, name: str) -> str:
        path = Path(tmp_path, name)
        if obj is not None:
            torch.save(obj, path)
        assert job("import_checkpoint").main([str(path), str(tmp_path / "out" / name)]) == 2
        return capsys.readouterr().err

    assert "not an official CMDSR, DASR or CDSR state dict" in run({"conv.weight": torch.zeros(1)}, "other.pt")
    extra = {**official_cmdsr(2).state_dict(), "sr_net.extra.weight": torch.zeros(1)}
    assert "official key 'sr_net.extra.weight' has no counterpart" in run(extra, "extra.pt")
    assert "holds no state dict of tensors" in run([1, 2, 3], "list.pt")
    assert "missing.pt does not exist" in run(None, "missing.pt")
    assert not (tmp_path / "out").exists()  # nothing written for a refused file
