"""Small builders the tests share: tiny models of every registry entry and the jobs/ scripts as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from blindsr.config import ModelConfig
from blindsr.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_feats=16, n_blocks=1, support_size=2, codebook_size=16, moco_queue=32)  # valid for every MODELS entry


def tiny(name: str, scale: int = 2) -> torch.nn.Module:
    """An eval-mode, seeded, small ``name`` model (seconds to run, same weights every call)."""
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **TINY), scale).eval()


def job(name: str) -> ModuleType:
    """``jobs/<name>.py`` imported as a module (call its ``main(argv)``)."""
    spec = importlib.util.spec_from_file_location(f"job_{name}", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
