"""A checkpoint directory: ``config.yaml`` + ``model.safetensors`` (the model's weights, the format the SR
ecosystem exchanges) + ``model_ema.safetensors`` when ``train.ema_decay`` > 0 (the averaged weights, which
inference, evaluation and export load) + ``trainer.pt`` (optimisers, schedulers, counters; read with
``torch.load(weights_only=True)``) + ``state.json`` (step, validation PSNR). Rebuilds with
``build_model(cfg.model)``: no Ray, no MLflow, no pickled code. Checkpoints written before safetensors hold
``model.pt`` instead; they still load (``weights_only=True``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from blindsr.config import Config, load_yaml, save_yaml
from blindsr.errors import UserError
from blindsr.models import build_model

MODEL_FILE, EMA_FILE, LEGACY_MODEL_FILE = "model.safetensors", "model_ema.safetensors", "model.pt"


def save_weights(model: nn.Module, path: str | Path) -> None:
    """``model``'s state_dict as safetensors (CPU, contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``model.safetensors``, or from a legacy ``model.pt`` (``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as e:  # truncated or not safetensors at all: a ValueError like torch.load's
            raise ValueError(f"{path.name} is not a whole safetensors file ({e})") from e
    return torch.load(path, map_location="cpu", weights_only=True)


def model_file(folder: str | Path) -> Path:
    """The weights file of a checkpoint folder: ``model.safetensors``, else a legacy ``model.pt`` if present."""
    folder = Path(folder)
    legacy = folder / LEGACY_MODEL_FILE
    return legacy if legacy.is_file() and not (folder / MODEL_FILE).exists() else folder / MODEL_FILE


def inference_file(folder: str | Path) -> Path:
    """The weights a checkpoint is used with: the EMA's when it has them, else :func:`model_file`."""
    ema = Path(folder) / EMA_FILE
    return ema if ema.is_file() else model_file(folder)


def save(
    folder: str | Path,
    cfg: Config,
    model: nn.Module,
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    ema: nn.Module | None = None,
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, folder / "config.yaml")
    save_weights(model, folder / MODEL_FILE)
    if ema is not None:
        save_weights(ema, folder / EMA_FILE)
    torch.save(trainer_state, folder / "trainer.pt")
    (folder / "state.json").write_text(json.dumps(meta, indent=2))
    return folder


class CheckpointError(UserError, RuntimeError):
    """A checkpoint directory whose files are missing, truncated or not what ``save`` wrote."""


@dataclass
class Saved:
    model: dict[str, torch.Tensor]  # the model's state_dict
    trainer: dict[str, Any]  # optimisers, schedulers and counters (``Step.state_dict``)
    meta: dict[str, Any]  # at least ``step``
    ema: dict[str, torch.Tensor] | None = None  # the EMA's state_dict, when the run keeps one


def read_meta(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def read(folder: str | Path) -> Saved:
    """All of a checkpoint, read (``weights_only=True``) before anything is applied, so a half-written or
    corrupted checkpoint raises :class:`CheckpointError` naming the bad file and changes nothing."""
    folder = Path(folder)
    weights = model_file(folder)
    parts: dict[str, Any] = {}
    names = ["state.json", weights.name, "trainer.pt"] + ([EMA_FILE] if (folder / EMA_FILE).exists() else [])
    for name in names:
        try:
            if name == "state.json":
                parts[name] = read_meta(folder)
                int(parts[name]["step"])
            elif name in (weights.name, EMA_FILE):
                parts[name] = load_weights(folder / name)
            else:
                parts[name] = torch.load(folder / name, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated file, bad JSON, missing file or key: all mean "unusable"
            raise CheckpointError(
                f"{folder / name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e
    return Saved(parts[weights.name], parts["trainer.pt"], parts["state.json"], parts.get(EMA_FILE))


def load_model(folder: str | Path) -> tuple[Config, nn.Module]:
    """Rebuild the model of a checkpoint directory from its own ``config.yaml``, with its EMA weights when
    it has them (:func:`inference_file`)."""
    return rebuild(Path(folder) / "config.yaml", inference_file(folder))


def rebuild(config: str | Path, weights: str | Path) -> tuple[Config, nn.Module]:
    """``build_model`` from a resolved ``config.yaml``, then its weights (safetensors or legacy ``.pt``)."""
    cfg = load_yaml(config)
    model = build_model(cfg.model, cfg.scale)
    model.load_state_dict(load_weights(weights))
    return cfg, model.eval()
