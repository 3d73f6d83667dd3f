"""Running a model on a whole image: its condition computed once per image (the family's contract), then the
generator on the whole image or in tiles. No Ray, no MLflow, no files: inference, evaluation, export and the
registry's pyfunc all call it. CMDSR: the support is n seeded crops of the whole LR (its self-support); CDSR/DASR:
the encoder embeds the whole LR once. Tiles are LR cores with ``overlap`` px of context; only the cores are kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from blindsr.errors import InputError
from blindsr.metrics import to_uint8
from blindsr.models.cmdsr import SELF_SUPPORT_PATCH, self_support
from blindsr.models.family import Family, family_of


def choose_device(requested: str | torch.device | None = None, use_gpu: bool | None = None) -> torch.device:
    """``requested`` when given; else CUDA when there is one and the run did not turn GPUs off, else the CPU."""
    if requested is not None:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() and use_gpu is not False else "cpu")


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
        raise InputError("fp16 inference needs a CUDA device")
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
