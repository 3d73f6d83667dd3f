"""Validation and evaluation primitives: a fixed set of degraded images, SR of whole images, PSNR/SSIM.

Used by the training loop (a small deterministic subset of a paper protocol, every ``val_every`` steps)
and by the evaluation job. Pure: no Ray, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from blindsr.config import Config
from blindsr.data.sources import load_source
from blindsr.degradations.pipeline import apply, mod_crop
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.degradations.resize import imresize
from blindsr.degradations.spec import DegradationSpec
from blindsr.infer import upscale_array
from blindsr.metrics import psnr, ssim, to_uint8
from blindsr.models.family import Family, family_of
from blindsr.visualize import grid, kernel_image


@dataclass(frozen=True)
class ValImage:
    image: str
    degradation: str
    spec: DegradationSpec
    lr: np.ndarray  # (h, w, 3) uint8
    hr: np.ndarray  # (s·h, s·w, 3) uint8


def protocol_for(cfg: Config) -> tuple[str, list[str] | None]:
    """The paper protocol a run validates on and which of its degradations (None: all).

    ``auto``: CDSR/DASR → three of the nine CDSR kernels (mildest, middle, strongest); the CMDSR family
    → Middle and Severe."""
    name = cfg.train.val_protocol
    if name == "auto":
        name = "cdsr9" if family_of(cfg.model) is Family.CONTRASTIVE else "cmdsr"
    if name == "cdsr9":
        names = list(TEST_PRESETS["cdsr9"](cfg.scale))
        return name, [names[0], names[4], names[8]]
    if name == "cmdsr":
        return name, ["middle", "severe"]
    return name, None


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    if side <= 0:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top : top + side, left : left + side]


def build_val_set(cfg: Config) -> list[ValImage]:
    """Deterministic: the first ``val_images`` images of ``data.val_source`` ('corpus' → its val split),
    centre-cropped to ``val_crop`` and mod-cropped, degraded with each protocol degradation."""
    protocol, subset = protocol_for(cfg)
    specs = TEST_PRESETS[protocol](cfg.scale)
    if subset is not None:
        specs = {k: specs[k] for k in subset}
    pool = load_source(cfg.data.val_source, split="val", min_size=cfg.scale * 8)
    out = []
    for img in list(pool)[: cfg.train.val_images]:
        hr = mod_crop(centre_crop(img.pixels, cfg.train.val_crop), cfg.scale)
        for name, spec in specs.items():
            out.append(ValImage(img.id, name, spec, apply(hr, spec), hr))
    return out


def bicubic_image(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-bicubic ×s upsampling, the reference row of every table."""
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].double().div(255)
    return to_uint8(imresize(x, float(scale))[0])


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y with a border shave of ``scale`` (DESIGN §5)."""
    return psnr(sr, hr, shave=scale), ssim(sr, hr, shave=scale)


def validate(
    model: nn.Module, val_set: list[ValImage], scale: int, samples: int = 0
) -> tuple[dict[str, float], np.ndarray | None]:
    """Mean and per-degradation PSNR/SSIM (Y) of ``model`` and of bicubic; optionally an LR | SR | HR | kernel
    grid of the first ``samples`` images. Returns (metrics named ``val/...``, grid or None)."""
    was_training = model.training
    model.eval()
    rows, per_deg = [], {}
    try:
        for i, item in enumerate(val_set):
            sr = upscale_array(model, item.lr)
            p, s = score(sr, item.hr, scale)
            pb, _ = score(bicubic_image(item.lr, scale), item.hr, scale)
            per_deg.setdefault(item.degradation, []).append((p, s, pb))
            if i < samples:
                kernel = kernel_image(item.spec.kernel_array(), item.hr.shape[0])
                rows.append(((item.lr, sr, item.hr, kernel), f"{item.image} {item.degradation}: {p:.2f} dB"))
    finally:
        model.train(was_training)
    metrics: dict[str, float] = {}
    for name, vals in per_deg.items():
        arr = np.array(vals)
        metrics[f"val/{name}/psnr_y"], metrics[f"val/{name}/ssim_y"] = float(arr[:, 0].mean()), float(arr[:, 1].mean())
    every = np.array([v for vals in per_deg.values() for v in vals])
    metrics["val/psnr_y"], metrics["val/ssim_y"] = float(every[:, 0].mean()), float(every[:, 1].mean())
    metrics["val/bicubic_psnr_y"] = float(every[:, 2].mean())
    return metrics, (grid(rows) if rows else None)
