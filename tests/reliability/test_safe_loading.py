"""Checkpoints load with ``torch.load(weights_only=True)`` and nothing user-supplied is evaluated or unpickled:
a checkpoint carrying a code-executing pickle is refused without running it, and a scan of the package and
the jobs finds no eval/exec, pickle loads, unsafe YAML loaders or torch.load without weights_only=True."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from blindsr.artifacts import checkpoint
from blindsr.config import Config, ModelConfig
from blindsr.models import build_model

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "platform" / "blindsr").rglob("*.py"), *(ROOT / "jobs").glob("*.py")])


class Payload:
    """Unpickling this runs ``os.system``: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def saved(tmp_path) -> Path:
    cfg = Config(scale=2, model=ModelConfig(name="srresnet", n_feats=8, n_blocks=1))
    return checkpoint.save(tmp_path / "ckpt", cfg, build_model(cfg.model, cfg.scale), {"counters": [1, 2]}, {"step": 3})


def test_every_checkpoint_file_loads_without_unpickling_code(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["config.yaml", "model.safetensors", "state.json", "trainer.pt"]
    weights = load_file(str(saved / "model.safetensors"))  # plain tensors: the format has no code in it
    assert weights.keys() == build_model(ModelConfig(name="srresnet", n_feats=8, n_blocks=1), 2).state_dict().keys()
    torch.load(saved / "trainer.pt", map_location="cpu", weights_only=True)
    assert checkpoint.read(saved).meta["step"] == 3


@pytest.mark.parametrize(
    ("victim", "error"),
    [
        ("model.safetensors", "ValueError: model.safetensors is not a whole safetensors file"),
        ("trainer.pt", "UnpicklingError"),
        ("model.pt", "UnpicklingError"),
    ],
)  # model.pt: a checkpoint from before safetensors
def test_a_code_executing_checkpoint_is_refused_unexecuted(saved, tmp_path, victim, error):
    marker = tmp_path / "pwned"
    if victim == "model.pt":
        (saved / "model.safetensors").unlink()
    torch.save({"state": Payload(marker)}, saved / victim)
    with pytest.raises(checkpoint.CheckpointError, match=rf"{victim}: {error}"):
        checkpoint.read(saved)
    assert not marker.exists()


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id
                if isinstance(f, ast.Name)
                else f"{ast.unparse(f.value)}.{f.attr}"
                if isinstance(f, ast.Attribute)
                else ""
            )
            yield name, node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unsafe_deserialisation_in_the_code(path):
    bad = []
    for name, node in calls(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if name in ("eval", "exec", "pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads"):
            bad.append(f"{where} calls {name}")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            bad.append(f"{where} calls {name} (use yaml.safe_load)")
        if name == "torch.load":
            safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
            if not safe:
                bad.append(f"{where} calls torch.load without weights_only=True")
    assert not bad, bad


def test_the_scan_sees_the_files():
    names = {p.name for p in SOURCES}
    assert {"checkpoint.py", "loading.py", "train_cdsr.py"} <= names  # loading.py: the YAML loader
    found = [n for p in SOURCES for n, _ in calls(ast.parse(p.read_text())) if n == "torch.load"]
    assert found  # the torch.load calls exist and were checked above


def test_a_cut_ema_file_is_named_and_nothing_is_applied(tmp_path):
    cfg = Config(scale=2, model=ModelConfig(name="srresnet", n_feats=8, n_blocks=1))
    model = build_model(cfg.model, cfg.scale)
    saved = checkpoint.save(tmp_path / "ckpt", cfg, model, {}, {"step": 3}, ema=model)
    assert checkpoint.read(saved).ema is not None
    (saved / checkpoint.EMA_FILE).write_bytes((saved / checkpoint.EMA_FILE).read_bytes()[:64])
    with pytest.raises(checkpoint.CheckpointError, match="model_ema.safetensors: ValueError: .*not a whole"):
        checkpoint.read(saved)
