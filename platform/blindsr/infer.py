"""Inference from any source: ``load`` takes ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
``runs:/<run>/model`` (downloaded by :mod:`blindsr.tracking`) or a checkpoint folder (:mod:`blindsr.artifacts`) and
returns an eval-mode model on the best device; ``upscale`` reads arrays, a file or a folder and returns SR images
(:mod:`blindsr.models.inference` runs the model)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from blindsr.data.images import ImageReadError, list_image_files, read_image
from blindsr.errors import UserError
from blindsr.models.inference import choose_device, upscale_array

log = logging.getLogger(__name__)


class ModelSourceError(UserError, ValueError):
    """A model source that is neither a registry/run URI nor a checkpoint folder."""


def load(source: str, tracking_uri: str | None = None, device: torch.device | str | None = None) -> nn.Module:
    """An eval-mode model from ``source`` on ``device`` (default: CUDA when available, else CPU).

    Raises :class:`ModelSourceError` or ``tracking.RegistryError`` with a one-line reason."""
    if source.startswith(("models:/", "runs:/")):
        from blindsr.tracking import load_model

        model = load_model(source, tracking_uri)
    else:
        from blindsr.artifacts.checkpoint import load_model as load_checkpoint
        from blindsr.artifacts.checkpoint import model_file
        from blindsr.config import ConfigError

        folder = Path(source).expanduser()
        if not ((folder / "config.yaml").is_file() and model_file(folder).is_file()):
            raise ModelSourceError(
                f"model source {source!r} is neither a models:/ or runs:/ URI nor a checkpoint folder "
                "holding config.yaml and model.safetensors"
            )

        try:
            model = load_checkpoint(folder)[1]
        except (ConfigError, OSError, RuntimeError, ValueError) as e:  # torch: truncated or mismatched weights
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelSourceError(f"checkpoint folder {folder} does not load: {reason}") from e
    return model.to(device or choose_device()).eval()


def read_inputs(source: np.ndarray | Sequence[np.ndarray] | str | Path) -> list[tuple[str, np.ndarray]]:
    """(name, (h, w, 3) uint8) pairs from an array, a list of arrays, an image file or a folder (top level;
    unreadable files are logged and skipped)."""
    if isinstance(source, np.ndarray):
        return [("image", source)]
    if not isinstance(source, (str, Path)):
        return [(f"image_{i}", a) for i, a in enumerate(source)]
    path = Path(source).expanduser()
    if path.is_file():
        return [(path.stem, read_image(path))]
    out = []
    for f in list_image_files(path, recursive=False):  # raises DatasetError for a missing/empty folder
        try:
            out.append((f.stem, read_image(f)))
        except ImageReadError as e:
            log.warning("skipping %s", e)
    return out


AUTO_TILE = 512  # LR tile side used when an image is too large to run whole
AUTO_TILE_PIXELS = 2048 * 2048  # above this many LR pixels, tile=0 means AUTO_TILE


def upscale(
    model: nn.Module,
    source: np.ndarray | Sequence[np.ndarray] | str | Path,
    tile: int = 0,
    overlap: int = 16,
    seed: int = 0,
    half: bool = False,
    auto_tile_pixels: int = AUTO_TILE_PIXELS,
) -> list[tuple[str, np.ndarray]]:
    """Super-resolve every input image (see :func:`read_inputs`) → [(name, (s·h, s·w, 3) uint8)].

    ``tile=0`` runs each image whole, except images of more than ``auto_tile_pixels`` LR pixels, which are
    tiled at :data:`AUTO_TILE` (a whole 10k × 10k photo would need tens of GB of activations)."""
    images = read_inputs(source)
    out = []
    for name, lr in tqdm(images, desc="upscale", unit="image", disable=len(images) < 2):
        side = tile
        if not tile and lr.shape[0] * lr.shape[1] > auto_tile_pixels:
            side = AUTO_TILE
            log.info("%s is %dx%d px: tiled at %d px (choose with --tile)", name, lr.shape[0], lr.shape[1], side)
        out.append((name, upscale_array(model, lr, tile=side, overlap=overlap, seed=seed, half=half)))
    return out
