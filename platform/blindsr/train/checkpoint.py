"""A checkpoint directory: ``config.yaml`` + ``model.pt`` (state_dict) + ``trainer.pt`` (optimisers,
schedulers, counters) + ``state.json`` (step, validation PSNR). Rebuilds with ``build_model(cfg.model)``
and loads with ``torch.load(weights_only=True)``: no Ray, no MLflow, no pickled code."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blindsr.config import Config, load_yaml, save_yaml
from blindsr.models import build_model

log = logging.getLogger(__name__)


def save(
    folder: str | Path, cfg: Config, model: nn.Module, trainer_state: dict[str, Any], meta: dict[str, Any]
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, folder / "config.yaml")
    torch.save(model.state_dict(), folder / "model.pt")
    torch.save(trainer_state, folder / "trainer.pt")
    (folder / "state.json").write_text(json.dumps(meta, indent=2))
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def load_weights(folder: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load ``model.pt`` into ``model``; return the trainer state (to hand to ``Step.load_state_dict``)."""
    folder = Path(folder)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)


def load_model(folder: str | Path) -> tuple[Config, nn.Module]:
    """Rebuild the model of a checkpoint directory from its own ``config.yaml``."""
    cfg = load_yaml(Path(folder) / "config.yaml")
    model = build_model(cfg.model, cfg.scale)
    model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    return cfg, model.eval()


def latest_local(run_dir: str | Path) -> tuple[Path, int] | None:
    """The readable checkpoint with the highest step under a local Ray Train run folder, or None.

    A checkpoint whose files do not load is skipped with a warning (the previous one is used instead).
    """
    best: tuple[Path, int] | None = None
    for folder in Path(run_dir).glob("checkpoint_*"):
        try:
            step = int(read_meta(folder)["step"])
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable checkpoint %s (%s)", folder, e)
            continue
        if best is None or step > best[1]:
            best = (folder, step)
    return best
