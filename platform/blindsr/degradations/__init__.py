"""Pure degradation operations (numpy / torch, no Ray): kernels, blur, resize, noise, JPEG, specs.

The names below load on first use: importing a submodule (``blindsr.config`` imports ``.config``) does not
import torch, so a Ray process that only unpickles a config (Ray Data's split coordinator) starts faster."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "apply": "pipeline",
    "degrade": "pipeline",
    "mod_crop": "pipeline",
    "TEST_PRESETS": "presets",
    "TRAIN_PRESETS": "presets",
    "sample_spec": "sampling",
    "DegradationSpec": "spec",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
