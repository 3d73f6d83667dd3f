"""The leaderboard's outputs: a Markdown page (one table per protocol × scale, sources as footnotes), a CSV of
one line per method (``blindsr.tables``) and a PNG of PSNR-Y against parameters (matplotlib).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from blindsr.evaluation.table import BICUBIC
from blindsr.leaderboard.rows import Key, Row
from blindsr.published import Catalogue
from blindsr.tables import csv_text, markdown_table

NA = "–"


def _fmt(cells: list[tuple[float, float]] | None, seeds: int) -> str:
    if not cells or all(m != m for m, _ in cells):
        return NA
    spread = seeds > 1
    return " / ".join(f"{m:.2f}" + (f" ± {s:.2f}" if spread and s == s else "") for m, s in cells)


def _sets(rows: list[Row], key: Key) -> tuple[list[str], list[str]]:
    ours = sorted({t for r in rows for (p, s, t) in r.ours if (p, s) == key})
    paper = sorted({t for r in rows for k, e in r.paper.items() if k == key for t in e.psnr_y}, key=_set_order)
    return ours, paper


def _set_order(name: str) -> tuple[int, str]:
    order = ["Set5", "Set14", "B100", "Urban100"]
    return (order.index(name) if name in order else len(order), name)


def _millions(n: int | None, digits: int = 2) -> str:
    return NA if n is None else f"{n / 1e6:.{digits}f}"


def tables(rows: list[Row], catalogue: Catalogue, legends: dict[str, str]) -> str:
    """One Markdown table per (protocol, scale) with our sets and the papers' sets, sources as footnotes."""
    keys = sorted({k[:2] for r in rows for k in r.ours} | {k for r in rows for k in r.paper})
    out = []
    for key in keys:
        ours, paper = _sets(rows, key)
        present = [r for r in rows if any(k[:2] == key for k in r.ours) or key in r.paper]
        if not ours:
            continue
        cols = catalogue.columns(*key)
        sources = list(dict.fromkeys(r.paper[key].source for r in present if key in r.paper))
        what = "mean over its degradations" if cols == ("mean",) else " / ".join(cols)
        out += [
            f"## {key[0]} ×{key[1]}",
            "",
            f"PSNR-Y (dB), {what}.",
        ]
        out += ["", f"_{legends[key[0]]}_"] if key[0] in legends else []
        head = ["method", "versions", "seeds", "params (M)", "GFLOPs (256² LR)"]
        head += [f"{t} (ours)" for t in ours] + [f"{t} (paper)" for t in paper]
        body = []
        for r in present:
            e = r.paper.get(key)
            ref = f" [{sources.index(e.source) + 1}]" if e else ""
            label = r.method + (f" ↔ {e.method}{ref}" if e and r.versions else ref)
            cells = [label, ",".join(r.versions) or NA, str(r.seeds) if r.versions else NA, _millions(r.parameters)]
            cells.append(NA if r.flops is None else f"{r.flops / 1e9:.1f}")
            cells += [_fmt(r.ours.get((*key, t)), r.seeds) for t in ours]
            cells += [_fmt([(v, math.nan) for v in e.psnr_y[t]], 1) if e and t in e.psnr_y else NA for t in paper]
            body.append(cells)
        out += ["", markdown_table(head, body)]
        out += [""] + [f"[{i + 1}] {s}" for i, s in enumerate(sources)] + [""]
    return "\n".join(out)


def to_csv(rows: list[Row], catalogue: Catalogue) -> str:
    """One line per method: its cost, then ours (mean, std) and the paper's number per protocol/set/column."""
    keys = sorted({k[:2] for r in rows for k in r.ours} | {k for r in rows for k in r.paper})
    header, getters = ["method", "versions", "seeds", "family", "parameters", "flops_256"], []
    for key in keys:
        tag, (ours, paper) = f"{key[0]}_x{key[1]}", _sets(rows, key)
        for t in ours:
            for i, c in enumerate(catalogue.columns(*key)):
                header += [f"{tag}/{t}/{c}/psnr_y", f"{tag}/{t}/{c}/psnr_y_std"]
                getters.append(
                    lambda r, k=(*key, t), i=i: (
                        [f"{x:.4f}" if x == x else "" for x in r.ours[k][i]] if k in r.ours else ["", ""]
                    )
                )
        for t in paper:
            for i, c in enumerate(catalogue.columns(*key)):
                header.append(f"{tag}/{t}/{c}/published_psnr_y")
                getters.append(
                    lambda r, k=key, t=t, i=i: (
                        [f"{r.paper[k].psnr_y[t][i]:.2f}"] if k in r.paper and t in r.paper[k].psnr_y else [""]
                    )
                )
        header.append(f"{tag}/published_source")
        getters.append(lambda r, k=key: [f"{r.paper[k].method}: {r.paper[k].source}" if k in r.paper else ""])
    body = [
        [r.method, " ".join(r.versions), r.seeds if r.versions else "", r.family or "", r.parameters or ""]
        + [r.flops or ""]
        + [x for g in getters for x in g(r)]
        for r in rows
    ]
    return csv_text(header, body)


def plot(rows: list[Row], path: str | Path, title: str = "") -> Path:
    """PSNR-Y against parameters (log axis), one panel per protocol × scale: ours filled (± std over seeds), the
    papers' hollow, bicubic a dashed line per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    keys = sorted({k[:2] for r in rows for k in r.ours})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5.5 * max(1, len(keys)), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        ours, paper = _sets(rows, key)
        colour = {t: f"C{i % 10}" for i, t in enumerate(dict.fromkeys([*ours, *paper]))}
        for r in rows:
            for t in ours:
                cells = r.ours.get((*key, t))
                if not cells or cells[0][0] != cells[0][0]:
                    continue
                y, err = sum(m for m, _ in cells) / len(cells), max((s for _, s in cells if s == s), default=0.0)
                if r.method == BICUBIC:
                    ax.axhline(y, color=colour[t], ls="--", lw=1, label=f"bicubic {t}")
                elif r.parameters:
                    ax.errorbar(r.parameters / 1e6, y, yerr=err, fmt="o", color=colour[t], capsize=3)
                    ax.annotate(
                        r.method, (r.parameters / 1e6, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
                    )
            e = r.paper.get(key)
            for t in paper if e and e.params_m else ():
                if t in e.psnr_y:
                    y = sum(e.psnr_y[t]) / len(e.psnr_y[t])
                    ax.plot(e.params_m, y, "o", mfc="none", color=colour[t])
                    ax.annotate(e.method, (e.params_m, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
        for t in [*ours, *paper]:
            ax.plot(
                [],
                [],
                "o",
                color=colour[t],
                mfc=None if t in ours else "none",
                label=f"{t} ({'ours' if t in ours else 'paper'})",
            )
        if any(x > 0 for line in ax.get_lines() for x in line.get_xdata()):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # 2×10⁻² … labels overlap
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_title(f"{key[0]} ×{key[1]}", fontsize=9)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def page(rows: list[Row], catalogue: Catalogue, legends: dict[str, str], command: str, notes: Sequence[str]) -> str:
    """The whole Markdown page: how it was made, how to read it, the tables and the plot."""
    head = [
        "# Leaderboard",
        "",
        f"Generated by `{command}`; do not edit by hand. Each score is cached in MLflow per model version × "
        "protocol × test set (experiment `blindsr-leaderboard`, metrics tied to the version's logged model and to "
        "the set as an MLflow dataset), so a re-run evaluates only what is new.",
        "",
        "One row per method: the registered versions of one training config (listed under *versions*), several "
        "seeds pooled as mean ± std (sample std over seeds). *(ours)* columns are our evaluation, whole images "
        "unless cropped; *(paper)* columns the published number of the method named after ↔ (the same family, "
        "nearest parameter count), cited below each table; published methods we do not have get rows of their "
        "own. Compare ours with a paper only on the same set. FLOPs: one 256² LR image through the inference path "
        "(a multiply-add is 2 FLOPs).",
        "",
        *notes,
        "",
    ]
    return "\n".join(head) + tables(rows, catalogue, legends)
