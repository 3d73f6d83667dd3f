"""Inference: load a model from the registry or a checkpoint folder and super-resolve images of any size.

``load(source)`` takes ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run>/model`` (through
:mod:`blindsr.tracking`) or a checkpoint folder (``config.yaml`` + ``model.safetensors``) and returns an eval-mode model
on the best device. ``upscale`` reads arrays, a file or a folder and returns SR images.

Conditioning is computed once per image, from the whole image, and shared by every tile:

* CMDSR: the support is ``n`` seeded 32×32 crops of the whole LR (the official self-support), turned into one
  (1, 128) condition; ``seed`` 0 reproduces ``model(lr)``.
* CDSR / DASR: the query encoder embeds the whole LR once; the generator runs per tile.

Tiles are ``tile``×``tile`` LR cores read with ``overlap`` LR pixels of context on each side; only the cores are
kept. A generator whose receptive-field radius is at most ``overlap`` then gives the untiled output up to
float rounding (CMDSR/SRResNet, EDSR, …: max |Δ| ≤ 1e-5, tested). CDSR's DQA fusion takes its attention
query from the spatial mean of the features it sees, i.e. of the tile, so tiled CDSR is not exact: the demo
CDSR ×2 (trained) on a 96×128 LR photo crop differed by max |Δ| 1.9e-6 at overlap 16 and 1.8e-5 at overlap 8
([0, 1] floats); the stated tolerance is max |Δ| ≤ 1e-3 (tested on a tiny CDSR), far below one uint8 step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from blindsr.data.images import ImageReadError, read_image
from blindsr.data.sources import list_image_files
from blindsr.metrics import to_uint8
from blindsr.models import Family, family_of
from blindsr.models.cmdsr import SELF_SUPPORT_PATCH, self_support

log = logging.getLogger(__name__)


class ModelSourceError(ValueError):
    """A model source that is neither a registry/run URI nor a checkpoint folder."""


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load(source: str, tracking_uri: str | None = None, device: torch.device | str | None = None) -> nn.Module:
    """An eval-mode model from ``source`` on ``device`` (default: CUDA when available, else CPU).

    Raises :class:`ModelSourceError` or ``tracking.RegistryError`` with a one-line reason."""
    if source.startswith(("models:/", "runs:/")):
        from blindsr.tracking import load_model

        model = load_model(source, tracking_uri)
    else:
        from blindsr.config import ConfigError
        from blindsr.train.checkpoint import load_model as load_checkpoint
        from blindsr.train.checkpoint import model_file

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
    return model.to(device or best_device()).eval()


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def model_scale(model: nn.Module) -> int:
    """The SR factor of ``model``, from one forward pass on a (1, 3, 16, 20) probe."""
    probe = torch.zeros(1, 3, 16, 20, device=device_of(model))
    out = super_resolve(model, probe)
    return out.shape[-1] // probe.shape[-1]


def conditioned(
    model: nn.Module, lr: torch.Tensor, support: torch.Tensor | None = None, seed: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` with its condition fixed from the whole image ``lr`` (1, 3, h, w): a function mapping any
    crop (1, 3, h', w') of it to SR (1, 3, s·h', s·w'). ``support`` (1, n, 3, p, p) replaces CMDSR's
    self-support."""
    family = family_of(model)
    if family is Family.CONDITIONAL:
        if support is None:
            support = self_support(lr, model.support_size, SELF_SUPPORT_PATCH, torch.Generator().manual_seed(seed))
        condition = model.condition(support.to(lr))
        return lambda x: model(x, condition)
    if support is not None:
        raise ValueError(f"{type(model).__name__} takes no support set")
    if family is Family.CONTRASTIVE:
        embedding = model.encoder.embed(lr)
        return lambda x: model.generator(x, embedding)
    return model


def tiled(forward: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``forward`` on ``tile``² cores of lr (1, 3, h, w) with ``overlap`` px of context; stitch the cores."""
    h, w = lr.shape[-2:]
    out: torch.Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            sr = forward(lr[..., t0 : min(bottom + overlap, h), l0 : min(right + overlap, w)])
            s = sr.shape[-1] // (min(right + overlap, w) - l0)
            if out is None:
                out = sr.new_zeros(*sr.shape[:-2], h * s, w * s)
            out[..., top * s : bottom * s, left * s : right * s] = sr[
                ..., (top - t0) * s : (bottom - t0) * s, (left - l0) * s : (right - l0) * s
            ]
    assert out is not None
    return out


@torch.no_grad()
def super_resolve(
    model: nn.Module,
    lr: torch.Tensor,
    tile: int = 0,
    overlap: int = 16,
    support: torch.Tensor | None = None,
    seed: int = 0,
    half: bool = False,
) -> torch.Tensor:
    """lr (1, 3, h, w) in [0, 1] on the model's device → SR (1, 3, s·h, s·w) float32. ``tile`` > 0: tiled
    with ``overlap``; ``half``: fp16 autocast (CUDA only)."""
    if half and lr.device.type != "cuda":
        raise ValueError("fp16 inference needs a CUDA device")
    autocast = torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()
    with autocast:
        forward = conditioned(model, lr, support, seed)
        h, w = lr.shape[-2:]
        sr = forward(lr) if tile <= 0 or (h <= tile and w <= tile) else tiled(forward, lr, tile, overlap)
    return sr.float()


def upscale_array(model: nn.Module, lr: np.ndarray, **kwargs: object) -> np.ndarray:
    """(h, w, 3) uint8 → (s·h, s·w, 3) uint8 (rounded, clipped). ``kwargs`` go to :func:`super_resolve`."""
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div(255).to(device_of(model))
    return to_uint8(super_resolve(model, x, **kwargs)[0])  # type: ignore[arg-type]


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
