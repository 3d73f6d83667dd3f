"""In-training validation: a small fixed subset of the run's paper protocol, scored by :func:`evaluate`.

Rank 0 of the training loop builds the cases once and validates every checkpoint on them, so the numbers
of a run are comparable step to step and between runs with the same config.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from blindsr.config import Config
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.evaluation.cases import Case, generated_cases, named_set
from blindsr.evaluation.scoring import evaluate
from blindsr.evaluation.table import BICUBIC
from blindsr.models.family import Family, family_of
from blindsr.visualize import grid, kernel_image

MODEL = "model"  # the validated model's row


def protocol_for(cfg: Config) -> tuple[str, list[str] | None]:
    """The paper protocol a run validates on and which of its degradations (None: all).

    ``auto``: CDSR/DASR → three of the nine CDSR kernels (mildest, middle, strongest); the CMDSR family
    → Middle and Severe."""
    name = cfg.train.val_protocol
    if name == "auto":
        name = "cdsr9" if family_of(cfg.model) is Family.CONTRASTIVE else "cmdsr"
    if name in ("cdsr9", "cdsr9_noise15"):
        names = list(TEST_PRESETS[name](cfg.scale))
        return name, [names[0], names[4], names[8]]
    if name == "cmdsr":
        return name, ["middle", "severe"]
    return name, None


def val_cases(cfg: Config) -> list[Case]:
    """Deterministic: the first ``val_images`` images of ``data.val_source`` ('corpus' → its val split),
    centre-cropped to ``val_crop`` and mod-cropped, degraded with each protocol degradation."""
    protocol, subset = protocol_for(cfg)
    sets = named_set(cfg.data.val_source, cfg.scale, limit=cfg.train.val_images)
    return generated_cases(protocol, cfg.scale, sets, cfg.train.val_crop, degradations=subset)


def validate(
    model: nn.Module, cases: list[Case], scale: int, samples: int = 0
) -> tuple[dict[str, float], np.ndarray | None]:
    """Mean and per-degradation PSNR/SSIM (Y) of ``model`` and of bicubic; optionally an LR | SR | HR | kernel
    grid of the first ``samples`` cases. Returns (metrics named ``val/...``, grid or None)."""
    was_training = model.training
    model.eval()
    try:
        table = evaluate({MODEL: model}, cases, scale, "validation", oracle=False, keep=samples, progress=False)
    finally:
        model.train(was_training)
    metrics: dict[str, float] = {}
    for (_, deg), (p, s) in table.cells[MODEL].items():
        metrics[f"val/{deg}/psnr_y"], metrics[f"val/{deg}/ssim_y"] = p, s
    metrics["val/psnr_y"], metrics["val/ssim_y"] = table.mean(MODEL)
    metrics["val/bicubic_psnr_y"] = table.mean(BICUBIC)[0]
    psnrs = {(r.image, r.degradation): r.psnr for r in table.images if r.row == MODEL}
    rows = []
    for i, srs in table.outputs.items():
        case = cases[i]
        kernel = kernel_image(case.spec.kernel_array(), case.hr.shape[0])
        caption = f"{case.image} {case.degradation}: {psnrs[case.image, case.degradation]:.2f} dB"
        rows.append(((case.lr, srs[MODEL], case.hr, kernel), caption))
    return metrics, (grid(rows) if rows else None)
