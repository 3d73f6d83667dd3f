"""Benchmark tables: models × (test set, degradation) → PSNR/SSIM on Y, with reference rows.

Pure (no Ray, no MLflow): models come in as ``nn.Module``s (``infer.load`` resolves URIs and folders).

* Protocols ``cmdsr``, ``cdsr9``, ``bicubic`` degrade HR test images with fixed specs; with ``cache_dir`` the LR
  images are generated once and kept with their spec (``data.benchmarks.cached_lr``) in a folder keyed by a
  digest of the HR pixels, so repeated runs compare the same pixels. ``div2krk`` reads LR + GT pairs.
* Reference rows of the same run: ``bicubic`` (MATLAB bicubic ×s), and for conditional models (CMDSR) a
  ``<model> (oracle support)`` row next to the default self-support row. The oracle support is n seeded 32×32
  crops of the LR images of the *other* images of the same test set under the *same* degradation, i.e. clean
  HR content degraded exactly like the query but not the query itself (the training-time support). A set
  of one image falls back to crops of the image itself. DIV2KRK has no spec to share, so no oracle row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from blindsr.data.benchmarks import KernelPair, cached_lr
from blindsr.data.images import write_png
from blindsr.data.sources import HRImage
from blindsr.degradations.pipeline import apply, mod_crop
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.infer import model_scale, upscale_array
from blindsr.models import Family, family_of
from blindsr.models.cmdsr import SELF_SUPPORT_PATCH
from blindsr.validation import bicubic_image, centre_crop, score

BICUBIC = "bicubic"
ORACLE = " (oracle support)"
PROTOCOLS = (*TEST_PRESETS, "div2krk")


@dataclass(frozen=True)
class Case:
    """One scored pair: lr (h, w, 3) uint8 and hr (s·h, s·w, 3) uint8."""

    set: str
    degradation: str
    image: str
    lr: np.ndarray
    hr: np.ndarray


@dataclass(frozen=True)
class ImageScore:
    row: str
    set: str
    degradation: str
    image: str
    psnr: float
    ssim: float


@dataclass
class Table:
    """``cells[row][(set, degradation)] = (psnr, ssim)`` averaged over images; ``images`` per image."""

    title: str
    columns: list[tuple[str, str]]
    cells: dict[str, dict[tuple[str, str], tuple[float, float]]] = field(default_factory=dict)
    images: list[ImageScore] = field(default_factory=list)

    def sets(self) -> list[str]:
        return list(dict.fromkeys(s for s, _ in self.columns))

    def mean(self, row: str, test_set: str | None = None) -> tuple[float, float]:
        vals = np.array([v for (s, _), v in self.cells[row].items() if test_set in (None, s)])
        return float(vals[:, 0].mean()), float(vals[:, 1].mean())

    def markdown(self) -> str:
        """One Markdown table per test set: rows = models, columns = degradations + mean."""
        out = [f"**{self.title}** (PSNR-Y dB / SSIM-Y)"]
        for test_set in self.sets():
            degs = [d for s, d in self.columns if s == test_set]
            out += [
                "",
                f"{test_set}:",
                "",
                "| model | " + " | ".join(degs) + " | mean |",
                "|---" * (len(degs) + 2) + "|",
            ]
            for row, cells in self.cells.items():
                vals = [f"{cells[(test_set, d)][0]:.2f} / {cells[(test_set, d)][1]:.4f}" for d in degs]
                p, s = self.mean(row, test_set)
                out.append(f"| {row} | " + " | ".join(vals) + f" | {p:.2f} / {s:.4f} |")
        return "\n".join(out)

    def csv(self) -> str:
        """Long format: model,set,degradation,psnr_y,ssim_y, with a ``mean`` degradation per set."""
        lines = ["model,set,degradation,psnr_y,ssim_y"]
        for row in self.cells:
            for test_set in self.sets():
                cols = [(d, self.cells[row][(test_set, d)]) for s, d in self.columns if s == test_set]
                for deg, (p, s) in [*cols, ("mean", self.mean(row, test_set))]:
                    lines.append(f'"{row}",{test_set},{deg},{p:.6f},{s:.6f}')
        return "\n".join(lines) + "\n"

    def per_image_csv(self) -> str:
        lines = ["model,set,degradation,image,psnr_y,ssim_y"]
        lines += [f'"{r.row}",{r.set},{r.degradation},"{r.image}",{r.psnr:.6f},{r.ssim:.6f}' for r in self.images]
        return "\n".join(lines) + "\n"

    def metrics(self, protocol: str, row: str, suffix: str = "") -> dict[str, float]:
        """``eval/<protocol>/<set>/<degradation|mean>/{psnr_y,ssim_y}<suffix>`` of one row."""
        out = {}
        for test_set in self.sets():
            cols = [(d, self.cells[row][(test_set, d)]) for s, d in self.columns if s == test_set]
            for deg, (p, s) in [*cols, ("mean", self.mean(row, test_set))]:
                out[f"eval/{protocol}/{test_set}/{deg}/psnr_y{suffix}"] = p
                out[f"eval/{protocol}/{test_set}/{deg}/ssim_y{suffix}"] = s
        return out

    def model_metrics(self, protocol: str, model: str) -> dict[str, float]:
        """What an evaluation logs for ``model``: its row, bicubic's (``_bicubic``) and, for CMDSR-type
        models, its oracle-support row (``_oracle``)."""
        out = {**self.metrics(protocol, model), **self.metrics(protocol, BICUBIC, "_bicubic")}
        if model + ORACLE in self.cells:
            out.update(self.metrics(protocol, model + ORACLE, "_oracle"))
        return out


def _digest(images: list[np.ndarray]) -> str:
    h = hashlib.sha1()
    for img in images:
        h.update(str(img.shape).encode())
        h.update(np.ascontiguousarray(img).data)
    return h.hexdigest()[:10]


def generated_cases(
    protocol: str, scale: int, sets: Mapping[str, list[HRImage]], crop: int = 0, cache_dir: str | Path | None = None
) -> list[Case]:
    """HR images centre-cropped to ``crop`` (0: whole) and mod-cropped, degraded by every spec of ``protocol``."""
    if protocol not in TEST_PRESETS:
        raise ValueError(f"protocol {protocol!r} generates no LR; generated protocols: {', '.join(TEST_PRESETS)}")
    specs = TEST_PRESETS[protocol](scale)
    cases = []
    for name, images in sets.items():
        hrs = [HRImage(img.id, mod_crop(centre_crop(img.pixels, crop), scale)) for img in images]
        folder = Path(cache_dir, f"{name}-{_digest([h.pixels for h in hrs])}") if cache_dir else None
        for deg, spec in specs.items():
            lrs = (
                cached_lr(hrs, spec, folder / f"{protocol}_x{scale}" / deg)
                if folder
                else [apply(h.pixels, spec) for h in hrs]
            )
            cases += [Case(name, deg, h.id, lr, h.pixels) for h, lr in zip(hrs, lrs, strict=True)]
    return cases


def div2krk_cases(pairs: list[KernelPair], scale: int, crop: int = 0) -> list[Case]:
    """DIV2KRK pairs, optionally centre-cropped to ``crop`` HR pixels (the LR crop and its HR region)."""
    cases = []
    for p in pairs:
        lr, hr = p.lr, p.hr
        if crop > 0:
            side = crop // scale
            top, left = max(0, (lr.shape[0] - side) // 2), max(0, (lr.shape[1] - side) // 2)
            lr = lr[top : top + side, left : left + side]
            hr = hr[top * scale : (top + lr.shape[0]) * scale, left * scale : (left + lr.shape[1]) * scale]
        cases.append(Case("DIV2KRK", "given", p.id, lr, hr))
    return cases


def oracle_support(cases: list[Case], index: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n random crops (≤ 32²) from the LR of the other images sharing set and degradation with
    ``cases[index]`` (the image itself when it is alone) → (1, n, 3, p, p) float in [0, 1]."""
    me = cases[index]
    pool = [c.lr for c in cases if (c.set, c.degradation) == (me.set, me.degradation) and c.image != me.image]
    pool = pool or [me.lr]
    p = min(SELF_SUPPORT_PATCH, *(min(lr.shape[:2]) for lr in pool))
    crops = []
    for _ in range(n):
        lr = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        top = int(torch.randint(lr.shape[0] - p + 1, (1,), generator=generator))
        left = int(torch.randint(lr.shape[1] - p + 1, (1,), generator=generator))
        crops.append(torch.from_numpy(np.ascontiguousarray(lr[top : top + p, left : left + p])).permute(2, 0, 1))
    return torch.stack(crops)[None].float().div(255)


def slug(row: str) -> str:
    """A row name as a folder name."""
    return re.sub(r"[^\w.@-]+", "_", row).strip("_")


def score_rows(models: Mapping[str, nn.Module], scale: int, oracle: bool = True) -> dict[str, tuple[nn.Module, bool]]:
    """The model rows of a table: each model (self-support) and, when ``oracle``, its oracle-support twin.
    Raises ValueError when a model's scale differs from ``scale``."""
    for name, model in models.items():
        got = model_scale(model)
        if got != scale:
            raise ValueError(f"model {name} upscales x{got} but the protocol is evaluated at x{scale}")
    runs: dict[str, tuple[nn.Module, bool]] = {name: (m, False) for name, m in models.items()}
    for name, m in models.items():
        if oracle and family_of(m) is Family.CONDITIONAL:
            runs[name + ORACLE] = (m, True)
    return runs


def score_case(
    runs: Mapping[str, tuple[nn.Module, bool]],
    cases: list[Case],
    i: int,
    scale: int,
    seed: int = 0,
    tile: int = 0,
    save_dir: str | Path | None = None,
) -> list[ImageScore]:
    """Scores of case ``i`` for bicubic and every row; the oracle support of case i is seeded by (seed, i),
    so any process scoring case i gets the same numbers."""
    case = cases[i]
    outputs = {BICUBIC: bicubic_image(case.lr, scale)}
    for row, (model, with_oracle) in runs.items():
        support = None
        if with_oracle:
            support = oracle_support(cases, i, model.support_size, torch.Generator().manual_seed(seed * 100003 + i))
        outputs[row] = upscale_array(model, case.lr, tile=tile, seed=seed, support=support)
    scores = []
    for row, sr in outputs.items():
        p, s = score(sr, case.hr, scale)
        scores.append(ImageScore(row, case.set, case.degradation, case.image, p, s))
        if save_dir is not None:
            write_png(Path(save_dir, slug(row), case.set, case.degradation, f"{slug(case.image)}.png"), sr)
    return scores


def tabulate(title: str, cases: list[Case], rows: list[str], images: list[ImageScore]) -> Table:
    """Average per-image scores per (row, set, degradation) into a Table (rows in the given order)."""
    columns = list(dict.fromkeys((c.set, c.degradation) for c in cases))
    table = Table(title, columns)
    table.images.extend(images)
    for row in rows:
        table.cells[row] = {}
        for col in columns:
            vals = [(r.psnr, r.ssim) for r in images if r.row == row and (r.set, r.degradation) == col]
            table.cells[row][col] = (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
    return table


def score_cases(
    models: Mapping[str, nn.Module],
    cases: list[Case],
    scale: int,
    title: str,
    seed: int = 0,
    tile: int = 0,
    oracle: bool = True,
    save_dir: str | Path | None = None,
) -> Table:
    """Super-resolve every case with each model (on its own device; self-support seeded by ``seed``), with
    bicubic and, when ``oracle``, with oracle support for conditional models; average per column."""
    runs = score_rows(models, scale, oracle)
    images = [
        score
        for i in tqdm(range(len(cases)), desc=title, unit="image", disable=None)
        for score in score_case(runs, cases, i, scale, seed, tile, save_dir)
    ]
    return tabulate(title, cases, [*runs, BICUBIC], images)


def evaluate(
    models: Mapping[str, nn.Module],
    protocol: str,
    scale: int,
    images: list[HRImage],
    device: torch.device,
    crop: int = 0,
    title: str | None = None,
) -> Table:
    """One image list as test set ``val`` under a generated ``protocol``, models moved to ``device``."""
    for m in models.values():
        m.to(device).eval()
    cases = generated_cases(protocol, scale, {"val": images}, crop)
    return score_cases(models, cases, scale, title or f"{protocol} x{scale}, {len(images)} image(s)")
