"""Scoring: super-resolve cases with models and bicubic, PSNR/SSIM on Y, averaged into a Table.

:func:`evaluate` is the one entry point: the evaluation job, the training jobs' final evaluation, a sweep
trial's evaluation and in-training validation all call it. Pure (no Ray, no MLflow) unless ``sources`` asks
for the Ray fan-out of :mod:`blindsr.evaluation.on_ray`, which scores the same cases with the same seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from blindsr.data.images import write_png
from blindsr.degradations.resize import imresize
from blindsr.errors import InputError
from blindsr.evaluation.cases import Case, oracle_support
from blindsr.evaluation.table import BICUBIC, ORACLE, ImageScore, Table, slug, tabulate
from blindsr.metrics import psnr, ssim, to_uint8
from blindsr.models import Family, family_of
from blindsr.models.inference import model_scale, upscale_array

Rows = Mapping[str, tuple[nn.Module, bool]]  # row name → (model, with oracle support)


def bicubic_image(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-bicubic ×s upsampling of (h, w, 3) uint8, the reference row of every table."""
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].double().div(255)
    return to_uint8(imresize(x, float(scale))[0])


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y with a border shave of ``scale`` (DESIGN §5)."""
    return psnr(sr, hr, shave=scale), ssim(sr, hr, shave=scale)


def score_rows(models: Mapping[str, nn.Module], scale: int, oracle: bool = True) -> dict[str, tuple[nn.Module, bool]]:
    """The model rows of a table: each model (self-support) and, when ``oracle``, its oracle-support twin.
    Raises ValueError when a model's scale differs from ``scale``."""
    for name, model in models.items():
        got = model_scale(model)
        if got != scale:
            raise InputError(f"model {name} upscales x{got} but the protocol is evaluated at x{scale}")
    runs: dict[str, tuple[nn.Module, bool]] = {name: (m, False) for name, m in models.items()}
    for name, m in models.items():
        if oracle and family_of(m) is Family.CONDITIONAL:
            runs[name + ORACLE] = (m, True)
    return runs


def score_case(
    runs: Rows,
    cases: list[Case],
    i: int,
    scale: int,
    seed: int = 0,
    tile: int = 0,
    save_dir: str | Path | None = None,
    outputs: dict[str, np.ndarray] | None = None,
) -> list[ImageScore]:
    """Scores of case ``i`` for bicubic and every row; the oracle support of case i is seeded by (seed, i),
    so any process scoring case i gets the same numbers. ``outputs`` (when given) receives the SR images."""
    case = cases[i]
    srs = {BICUBIC: bicubic_image(case.lr, scale)}
    for row, (model, with_oracle) in runs.items():
        support = None
        if with_oracle:
            support = oracle_support(cases, i, model.support_size, torch.Generator().manual_seed(seed * 100003 + i))
        srs[row] = upscale_array(model, case.lr, tile=tile, seed=seed, support=support)
    if outputs is not None:
        outputs.update(srs)
    scores = []
    for row, sr in srs.items():
        p, s = score(sr, case.hr, scale)
        scores.append(ImageScore(row, case.set, case.degradation, case.image, p, s))
        if save_dir is not None:
            write_png(Path(save_dir, slug(row), case.set, case.degradation, f"{slug(case.image)}.png"), sr)
    return scores


def columns_of(cases: list[Case]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((c.set, c.degradation) for c in cases))


def evaluate(
    models: Mapping[str, nn.Module],
    cases: list[Case],
    scale: int,
    title: str,
    *,
    seed: int = 0,
    tile: int = 0,
    oracle: bool = True,
    save_dir: str | Path | None = None,
    keep: int = 0,
    progress: bool = True,
    sources: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
) -> Table:
    """Super-resolve every case with each model (on its own device; self-support seeded by ``seed``), with
    bicubic and, when ``oracle``, with oracle support for conditional models; average per column.

    ``keep``: the SR images of the first ``keep`` cases go to ``Table.outputs``. ``sources`` (row name →
    registry URI or checkpoint folder of each model) scores the cases in parallel Ray tasks instead, each
    loading the models itself; the numbers equal the local run's."""
    runs = score_rows(models, scale, oracle)
    if sources is not None:
        from blindsr.evaluation.on_ray import score_on_ray

        images = score_on_ray({row: sources[row] for row in models}, cases, scale, tracking_uri, seed, tile, oracle)
        return tabulate(title, columns_of(cases), [*runs, BICUBIC], images)
    images, outputs = [], {}
    for i in tqdm(range(len(cases)), desc=title, unit="image", disable=None if progress else True):
        out = outputs.setdefault(i, {}) if i < keep else None
        images += score_case(runs, cases, i, scale, seed, tile, save_dir, out)
    table = tabulate(title, columns_of(cases), [*runs, BICUBIC], images)
    table.outputs = outputs
    return table
