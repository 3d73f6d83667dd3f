"""Small builders the tests share: tiny models of every registry entry, jobs/ and benchmarks/ scripts as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from blindsr.config import Config, DataConfig, ModelConfig
from blindsr.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_feats=16, n_blocks=1, support_size=2, codebook_size=16, moco_queue=32, n_groups=1, encoder_blocks=1)


def tiny(name: str, scale: int = 2) -> torch.nn.Module:
    """An eval-mode, seeded, small ``name`` model (seconds to run, same weights every call)."""
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **TINY), scale).eval()


def tiny_config(name: str, scale: int = 2) -> Config:
    """A config whose model is ``tiny(name)``'s (CMDSR's tasks hold its 2n support and query patches)."""
    return Config(
        scale=scale, model=ModelConfig(name=name, **TINY), data=DataConfig(patches_per_task=2 * TINY["support_size"])
    )


def script(path: str) -> ModuleType:
    """``<repo>/<path>`` (a job or a benchmark) imported as a module (call its ``main(argv)``)."""
    name = "_".join(("script", *Path(path).with_suffix("").parts))  # never shadows a real package
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


def job(name: str) -> ModuleType:
    """``jobs/<name>.py`` imported as a module."""
    return script(f"jobs/{name}.py")
