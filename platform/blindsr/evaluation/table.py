"""Per-image scores and their tables: models × (test set, degradation) → PSNR/SSIM on Y."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from blindsr.tables import csv_text, markdown_table

BICUBIC = "bicubic"  # the reference row of every table
ORACLE = " (oracle support)"  # suffix of a conditional model's oracle-support row


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
    """``cells[row][(set, degradation)] = (psnr, ssim)`` averaged over images; ``images`` per image;
    ``outputs[i][row]`` the SR image (h, w, 3) uint8 of case i, for the cases the evaluation was asked to keep."""

    title: str
    columns: list[tuple[str, str]]
    cells: dict[str, dict[tuple[str, str], tuple[float, float]]] = field(default_factory=dict)
    images: list[ImageScore] = field(default_factory=list)
    outputs: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    legend: str = ""  # what the columns mean (cases.LEGENDS), printed under the title

    def sets(self) -> list[str]:
        return list(dict.fromkeys(s for s, _ in self.columns))

    def mean(self, row: str, test_set: str | None = None) -> tuple[float, float]:
        vals = np.array([v for (s, _), v in self.cells[row].items() if test_set in (None, s)])
        return float(vals[:, 0].mean()), float(vals[:, 1].mean())

    def markdown(self) -> str:
        """One Markdown table per test set: rows = models, columns = degradations + mean."""
        out = [f"**{self.title}** (PSNR-Y dB / SSIM-Y)"] + ([f"_{self.legend}_"] if self.legend else [])
        for test_set in self.sets():
            degs = [d for s, d in self.columns if s == test_set]
            body = []
            for row, cells in self.cells.items():
                p, s = self.mean(row, test_set)
                vals = [f"{cells[(test_set, d)][0]:.2f} / {cells[(test_set, d)][1]:.4f}" for d in degs]
                body.append([row, *vals, f"{p:.2f} / {s:.4f}"])
            out += ["", f"{test_set}:", "", markdown_table(["model", *degs, "mean"], body)]
        return "\n".join(out)

    def _long(self, row: str, test_set: str) -> list[tuple[str, tuple[float, float]]]:
        cols = [(d, self.cells[row][(test_set, d)]) for s, d in self.columns if s == test_set]
        return [*cols, ("mean", self.mean(row, test_set))]

    def csv(self) -> str:
        """Long format: model,set,degradation,psnr_y,ssim_y, with a ``mean`` degradation per set."""
        rows = [
            [row, test_set, deg, f"{p:.6f}", f"{s:.6f}"]
            for row in self.cells
            for test_set in self.sets()
            for deg, (p, s) in self._long(row, test_set)
        ]
        return csv_text(["model", "set", "degradation", "psnr_y", "ssim_y"], rows, quoted=["model"])

    def per_image_csv(self) -> str:
        rows = [[r.row, r.set, r.degradation, r.image, f"{r.psnr:.6f}", f"{r.ssim:.6f}"] for r in self.images]
        return csv_text(["model", "set", "degradation", "image", "psnr_y", "ssim_y"], rows, quoted=["model", "image"])

    def metrics(self, protocol: str, row: str, suffix: str = "") -> dict[str, float]:
        """``eval/<protocol>/<set>/<degradation|mean>/{psnr_y,ssim_y}<suffix>`` of one row."""
        out = {}
        for test_set in self.sets():
            for deg, (p, s) in self._long(row, test_set):
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


def tabulate(title: str, columns: list[tuple[str, str]], rows: list[str], images: list[ImageScore]) -> Table:
    """Average per-image scores per (row, set, degradation) into a Table (rows and columns in the given order)."""
    table = Table(title, columns)
    table.images.extend(images)
    for row in rows:
        table.cells[row] = {}
        for col in columns:
            vals = [(r.psnr, r.ssim) for r in images if r.row == row and (r.set, r.degradation) == col]
            table.cells[row][col] = (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
    return table


def slug(row: str) -> str:
    """A row name as a folder name."""
    return re.sub(r"[^\w.@-]+", "_", row).strip("_")
