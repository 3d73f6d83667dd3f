"""Inference: tiled equals untiled, self-support from the whole image, loading from checkpoints, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blindsr.artifacts.checkpoint import save_weights
from blindsr.config import Config, ModelConfig, save_yaml
from blindsr.data.images import DatasetError, read_image, write_png
from blindsr.infer import ModelSourceError, load, upscale
from blindsr.models.inference import model_scale, super_resolve
from helpers import TINY, job, tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "tolerance"), [("srresnet", 1e-5), ("cmdsr", 1e-5), ("edsr", 1e-5), ("cdsr", 1e-3)])
def test_tiled_equals_untiled(name, tolerance):
    """Local generators: float rounding only. CDSR: DQA's attention reads each tile's feature mean (infer.py)."""
    model = tiny(name)
    lr = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(1))
    whole = super_resolve(model, lr)
    tiles = super_resolve(model, lr, tile=16, overlap=8)
    assert tiles.shape == whole.shape == (1, 3, 80, 104)
    assert (tiles - whole).abs().max().item() <= tolerance


def test_tiles_share_the_whole_image_condition():
    """CMDSR's default (seed 0) is model(lr); its tiles must use that support, not crops of each tile."""
    model = tiny("cmdsr")
    lr = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(super_resolve(model, lr), model(lr), rtol=0, atol=0)
    other = super_resolve(model, lr, seed=5)
    assert not torch.equal(other, model(lr))
    torch.testing.assert_close(super_resolve(model, lr, tile=16, overlap=8, seed=5), other, rtol=0, atol=1e-5)


@pytest.mark.parametrize("weights", ["model.safetensors", "model.pt"])  # model.pt: checkpoints before safetensors
def test_checkpoint_folder_loads_and_upscales_a_folder(tmp_path, photo, caplog, weights):
    cfg = Config(scale=2, model=ModelConfig(name="srresnet", **TINY))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_yaml(cfg, ckpt / "config.yaml")
    if weights == "model.pt":
        torch.save(tiny("srresnet").state_dict(), ckpt / weights)
    else:
        save_weights(tiny("srresnet"), ckpt / weights)
    model = load(str(ckpt), device="cpu")
    assert model_scale(model) == 2
    images = tmp_path / "in"
    write_png(images / "cat.png", photo[:30, :44])
    (images / "notes.txt").write_text("not an image")
    (images / "broken.png").write_bytes(b"not a png")
    out = upscale(model, images)
    assert [name for name, _ in out] == ["cat"] and out[0][1].shape == (60, 88, 3)
    assert "broken.png" in caplog.text
    with torch.no_grad():
        direct = model(torch.from_numpy(photo[:30, :44].copy()).permute(2, 0, 1)[None].float() / 255)
    assert np.abs(out[0][1].astype(int) - np.rint(direct[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255)).max() <= 1

    rc = job("upscale").main([str(ckpt), str(images / "cat.png"), "--out", str(tmp_path / "sr"), "--tile", "12"])
    assert rc == 0 and read_image(tmp_path / "sr" / "cat_x2.png").shape == (60, 88, 3)


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ModelSourceError, match="neither a models:/ or runs:/ URI nor a checkpoint folder"):
        load(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="does not exist"):
        upscale(tiny("srresnet"), tmp_path / "missing")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        super_resolve(tiny("srresnet"), torch.rand(1, 3, 8, 8), half=True)
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert job("upscale").main(["models:/nope@champion", str(tmp_path), "--tracking-uri", uri]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
