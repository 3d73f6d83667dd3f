"""A checkpoint directory: ``config.yaml`` + ``model.pt`` (state_dict) + ``trainer.pt`` (optimisers,
schedulers, counters) + ``state.json`` (step, validation PSNR). Rebuilds with ``build_model(cfg.model)``
and loads with ``torch.load(weights_only=True)``: no Ray, no MLflow, no pickled code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blindsr.config import Config, load_yaml, save_yaml
from blindsr.models import build_model


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


class CheckpointError(RuntimeError):
    """A checkpoint directory whose files are missing, truncated or not what ``save`` wrote."""


@dataclass
class Saved:
    model: dict[str, torch.Tensor]  # the model's state_dict
    trainer: dict[str, Any]  # optimisers, schedulers and counters (``Step.state_dict``)
    meta: dict[str, Any]  # at least ``step``


def read_meta(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def read(folder: str | Path) -> Saved:
    """All of a checkpoint, read (``weights_only=True``) before anything is applied, so a half-written or
    corrupted checkpoint raises :class:`CheckpointError` naming the bad file and changes nothing."""
    folder = Path(folder)
    parts: dict[str, Any] = {}
    for name in ("state.json", "model.pt", "trainer.pt"):
        try:
            if name == "state.json":
                parts[name] = read_meta(folder)
                int(parts[name]["step"])
            else:
                parts[name] = torch.load(folder / name, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated zip, bad JSON, missing file or key: all mean "unusable"
            raise CheckpointError(
                f"{folder / name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e
    return Saved(parts["model.pt"], parts["trainer.pt"], parts["state.json"])


def load_model(folder: str | Path) -> tuple[Config, nn.Module]:
    """Rebuild the model of a checkpoint directory from its own ``config.yaml``."""
    cfg = load_yaml(Path(folder) / "config.yaml")
    model = build_model(cfg.model, cfg.scale)
    model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    return cfg, model.eval()
