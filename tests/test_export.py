"""ONNX export of every registry model, checked against PyTorch with onnxruntime (an independent runtime)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from blindsr.artifacts.checkpoint import save_weights
from blindsr.config import save_yaml
from blindsr.export import TOLERANCE, ExportError, check_onnx, export_onnx, graph_paths, run_onnx
from blindsr.models import MODELS
from blindsr.models.inference import super_resolve
from helpers import TINY, job, tiny, tiny_config

pytestmark = pytest.mark.slow  # tracing and exporting a model takes 3–40 s on 2 cores


def dims(path) -> list[list[int | str]]:
    """Each graph input's shape: an int for a fixed axis, the symbol's name for a dynamic one."""
    return [
        [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(path)).graph.input
    ]


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_graph_equals_pytorch_on_two_sizes_and_a_photo(name, tmp_path, photo):
    model = tiny(name)
    paths = export_onnx(model, tmp_path / f"{name}.onnx")
    assert paths == graph_paths(tmp_path / f"{name}.onnx", model) and all(p.is_file() for p in paths)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.data"))  # one self-contained file each
    lr_dims = dims(paths[0])[0]
    assert lr_dims[:2] == [1, 3] and all(isinstance(d, str) for d in lr_dims[2:])  # batch 1, dynamic h and w
    if name == "cmdsr":
        assert [p.name for p in paths] == ["cmdsr.onnx", "cmdsr.condition.onnx"]
        assert dims(paths[0])[1] == [1, 128] and dims(paths[1])[0][:3] == [1, TINY["support_size"], 3]

    assert check_onnx(model, paths[0]) <= TOLERANCE  # random LR at 48×64 and 72×40

    lr = torch.from_numpy(photo[100:137, 200:251].copy()).permute(2, 0, 1)[None].float() / 255  # odd sides
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    got = run_onnx(sessions, model, lr.numpy(), seed=3)
    ref = super_resolve(model, lr, seed=3).numpy()
    assert got.shape == (1, 3, 74, 102) and np.abs(got - ref).max() <= TOLERANCE


def test_export_job_on_a_checkpoint_and_its_errors(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    cfg = tiny_config("cmdsr")
    save_yaml(cfg, ckpt / "config.yaml")
    save_weights(tiny("cmdsr"), ckpt / "model.safetensors")
    out = tmp_path / "exports" / "cmdsr_x2.onnx"

    assert job("export").main([str(ckpt), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [str(out), str(out.with_name("cmdsr_x2.condition.onnx"))]
    assert printed[2].startswith("onnxruntime matches PyTorch on LR 48x64, 72x40: max |Δ|")
    before = out.read_bytes()

    assert job("export").main([str(ckpt), "--onnx", str(tmp_path / "model.pt")]) == 2
    assert "must name a .onnx file" in capsys.readouterr().err
    assert job("export").main([str(tmp_path / "missing"), "--onnx", str(out)]) == 2
    assert "neither a models:/ or runs:/ URI nor a checkpoint folder" in capsys.readouterr().err
    assert job("export").main([str(ckpt), "--onnx", str(out), "--opset", "11"]) == 2
    assert "--opset 11: the exporter writes opset 18 or newer" in capsys.readouterr().err

    with pytest.raises(ExportError, match=f"exporting DataDependent to {out} failed: .*data-dependent"):
        export_onnx(DataDependent(), out)
    assert out.read_bytes() == before and not list(out.parent.glob("*.partial"))  # the old export is intact

    other = tiny("srresnet")
    for p in other.parameters():
        p.data.add_(0.01)
    with pytest.raises(ExportError, match="differs from PyTorch"):  # the check can fail: a graph of other weights
        check_onnx(tiny("srresnet"), export_onnx(other, tmp_path / "s.onnx")[0])


class DataDependent(torch.nn.Module):
    """Control flow on a tensor's values: torch.export cannot trace it."""

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return lr * 2 if lr.mean() > 0.5 else lr
