"""Paper-style sweep reports: rows = settings, columns = test sets, ours beside the paper's number.

Reads a finished sweep's folder (``outputs/sweeps/<name>``: ``sweep.json`` + ``space.yaml``, written by
:func:`blindsr.tune.run_sweep`), writes ``report.md``, ``report.csv`` and ``report.png`` (PSNR per setting, ours
against the paper's; validation curves of every trial) into it and logs them to the sweep's MLflow parent run.
No Ray. Where our test sets differ from the paper's (the built-in corpus instead of Set5 …), both are shown
and the comparison is of the orderings only, which the report states. A sweep run with ``--seeds N`` has one
report row per setting with mean ± std over its seeds, and calls an ordering reproduced only beyond the spread.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindsr.evaluation import BICUBIC
from blindsr.space import Space, load_space
from blindsr.tables import csv_text, markdown_table
from blindsr.tracking import log_evaluation

log = logging.getLogger(__name__)


@dataclass
class ReportRow:
    setting: str
    status: str
    step: int
    val: float
    ours: dict[str, list[float]]  # set → [psnr, ssim]; with seeds, the mean over them
    paper: dict[str, list[float]]  # set → [psnr] or [psnr, ssim]
    history: list[list[float]]
    seeds: int = 1  # trials of this setting (one per seed)
    spread: dict[str, list[float]] = field(default_factory=dict)  # set → [std psnr, std ssim] over the seeds
    val_std: float = math.nan
    scores: list[float] = field(default_factory=list)  # per seed with a result: PSNR-Y mean over our sets
    histories: list[list[list[float]]] = field(default_factory=list)  # every seed's validation curve


def _fmt(values: list[float] | None, spread: list[float] | None = None) -> str:
    if not values or values[0] != values[0]:
        return "-"
    if spread is not None:  # a multi-seed sweep: mean ± std (std "-" from a single result)
        digits = (2, 4)[: len(values)]
        return " / ".join(
            f"{m:.{d}f} ± " + (f"{s:.{d}f}" if s == s else "-") for m, s, d in zip(values, spread, digits, strict=True)
        )
    return f"{values[0]:.2f}" + (f" / {values[1]:.4f}" if len(values) > 1 else "")


def _sampled(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the finite values; NaN where there are too few."""
    vals = [v for v in values if v == v]
    return (statistics.mean(vals) if vals else math.nan), (statistics.stdev(vals) if len(vals) > 1 else math.nan)


def _group(trials: list[dict[str, Any]], label: str, paper: dict[str, list[float]]) -> ReportRow:
    """One setting's trials (its seeds) as one row: mean ± std per set, of the validation and of the score."""
    ours, spread = {}, {}
    for s in dict.fromkeys(s for t in trials for s in t["eval"]["ours"]):
        stats = [mean_std([t["eval"]["ours"][s][i] for t in trials if s in t["eval"]["ours"]]) for i in (0, 1)]
        ours[s], spread[s] = [m for m, _ in stats], [d for _, d in stats]
    counts = Counter(t["status"] for t in trials)
    status = trials[0]["status"] if len(counts) == 1 else "; ".join(f"{n} {s}" for s, n in counts.items())
    val, val_std = mean_std([t["val"] for t in trials])
    scores = [v for v in (_mean(t["eval"]["ours"]) for t in trials) if v == v]
    histories = [t["history"] for t in trials]
    step = max(t["step"] for t in trials)
    return ReportRow(
        label, status, step, val, ours, paper, histories[0], len(trials), spread, val_std, scores, histories
    )


def rows(meta: dict[str, Any], space: Space) -> list[ReportRow]:
    """One row per trial, labelled by its row label and its sampled values, in the file's row order; with
    ``seeds`` in ``meta`` (``--seeds`` > 1), one row per setting, its trials' seeds grouped."""
    seeds = meta.get("seeds", 1) > 1
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for i, t in enumerate(meta["trials"]):
        groups.setdefault((t["row"], json.dumps(t["params"], sort_keys=True)) if seeds else (i, ""), []).append(t)
    out = []
    for trials in groups.values():
        t, row = trials[0], space.row(trials[0]["row"])
        label = ", ".join(x for x in (t["row"], _sampled(t["params"])) if x) or t["trial"]
        paper = row.paper if row else {}
        if seeds:
            out.append(_group(trials, label, paper))
        else:
            out.append(ReportRow(label, t["status"], t["step"], t["val"], t["eval"]["ours"], paper, t["history"]))
    return out


def _mean(cells: dict[str, list[float]]) -> float:
    vals = [v[0] for v in cells.values() if v and v[0] == v[0]]
    return sum(vals) / len(vals) if vals else math.nan


def score(r: ReportRow) -> float:
    """A setting's PSNR-Y, mean over our sets (and over its seeds)."""
    return statistics.mean(r.scores) if r.seeds > 1 and r.scores else _mean(r.ours)


def beyond_spread(a: ReportRow, b: ReportRow) -> int | None:
    """+1 when a's mean score exceeds b's by more than std_a + std_b, -1 for the reverse, 0 within the spread;
    None when either has fewer than two seeds with a result (no spread to exceed)."""
    (ma, sa), (mb, sb) = mean_std(a.scores), mean_std(b.scores)
    if sa != sa or sb != sb:
        return None
    return 1 if ma - mb > sa + sb else -1 if mb - ma > sa + sb else 0


def ordering(report_rows: list[ReportRow]) -> list[str]:
    """Lines comparing the best-first order of the settings, ours (mean over our sets) vs the paper's; with
    seeds, each of the paper's neighbouring pairs is reproduced only beyond the spread (:func:`beyond_spread`)."""
    both = [r for r in report_rows if r.paper and r.ours]
    if len(both) < 2:
        return []
    ours = [r.setting for r in sorted(both, key=lambda r: -score(r))]
    paper = [r.setting for r in sorted(both, key=lambda r: -_mean(r.paper))]
    best = f"- same best setting: {'yes' if ours[0] == paper[0] else 'no'} (paper: {paper[0]}; ours: {ours[0]})"
    if all(r.seeds == 1 for r in both):
        same = "yes" if ours == paper else "no: the reduced budget does not reproduce the paper's ordering"
        return [
            f"- paper, best first: {' > '.join(paper)}",
            f"- ours, best first: {' > '.join(ours)}",
            f"- same ordering: {same}",
            best,
        ]
    by_name = {r.setting: r for r in both}
    verdict = {1: "reproduced", 0: "within the spread", -1: "reversed beyond the spread", None: "too few seeds"}
    pairs = []
    for hi, lo in itertools.pairwise(paper):
        a, b = by_name[hi], by_name[lo]
        spread = mean_std(a.scores)[1] + mean_std(b.scores)[1]
        pairs.append((beyond_spread(a, b), f"  - {hi} > {lo}: Δ {score(a) - score(b):+.2f} dB, spread {spread:.2f} dB"))
    n = sum(v == 1 for v, _ in pairs)
    whole = "yes" if n == len(pairs) else "no"
    return [
        f"- paper, best first: {' > '.join(paper)}",
        f"- ours, best first (mean over seeds): {' > '.join(ours)}",
        f"- same ordering of the means: {'yes' if ours == paper else 'no'}",
        best,
        f"- the paper's neighbouring pairs, ours (Δmean vs std_a + std_b): {n} of {len(pairs)} reproduced",
        *[f"{line}: {verdict[v]}" for v, line in pairs],
        f"- paper's ordering reproduced (every pair beyond the spread): {whole}",
    ]


def legend(seeds: int) -> str:
    """What a multi-seed report's ± and "reproduced" mean."""
    return (
        f"Mean ± std over {seeds} seeds per setting (each trial's config seed + 0..{seeds - 1}; std: the sample "
        "standard deviation, n - 1; the `seeds` column counts those with a result). An ordering of two settings "
        "is *reproduced* only when their mean PSNR-Y (over our sets) differ by more than std_a + std_b, i.e. "
        "their mean ± std intervals do not overlap. A t-test on 3 values per side has 2-4 degrees of freedom "
        "and rests on a normality 3 values cannot show; this rule is descriptive, and with equal spreads at "
        "3 seeds it asks for Welch's t > 2.45 (two-sided p ≈ 0.07 at 4 degrees of freedom)."
    )


def markdown(meta: dict[str, Any], report_rows: list[ReportRow]) -> str:
    ours_sets = list(dict.fromkeys(s for r in report_rows for s in r.ours))
    paper_sets = list(dict.fromkeys(s for r in report_rows for s in r.paper))
    cols: list[tuple[str, str]] = []
    for s in ours_sets:
        cols.append((s, "ours"))
        if s in paper_sets:
            cols.append((s, "paper"))
    cols += [(s, "paper") for s in paper_sets if s not in ours_sets]
    seeds = meta.get("seeds", 1)
    head = ["setting", *[f"{s} ({who})" for s, who in cols], "val PSNR-Y", "step", "status"]
    head += ["seeds"] if seeds > 1 else []
    ev = meta["evaluate"]
    degs = ", ".join(ev["degradations"]) if ev["degradations"] else "mean over all"
    lines = [
        f"### {meta['title']}",
        "",
        f"Budget `{meta['budget']}` at x{meta['scale']}; PSNR-Y dB (/ SSIM-Y) of the final model, protocol "
        f"`{ev['protocol']}` ({degs}), HR crop {ev['crop'] or 'none'}. Sweep `{meta['name']}`.",
        *(["", legend(seeds)] if seeds > 1 else []),
        "",
    ]
    body = []
    for r in report_rows:
        if seeds > 1:
            cells = [_fmt(r.ours.get(s), r.spread.get(s)) if who == "ours" else _fmt(r.paper.get(s)) for s, who in cols]
            tail = [_fmt([r.val], [r.val_std]), str(r.step), r.status, f"{len(r.scores)} of {r.seeds}"]
        else:
            cells = [_fmt((r.ours if who == "ours" else r.paper).get(s)) for s, who in cols]
            tail = [f"{r.val:.2f}", str(r.step), r.status]
        body.append([r.setting, *cells, *tail])
    bicubic = next((t["eval"]["bicubic"] for t in meta["trials"] if t["eval"]["bicubic"]), {})
    if bicubic:
        cells = [_fmt(bicubic.get(s)) if who == "ours" else "-" for s, who in cols]
        tail = ["-", "-", "reference", *(["-"] if seeds > 1 else [])]
        body.append(["bicubic (reference)", *cells, *tail])
    lines.append(markdown_table(head, body))
    if ours_sets and paper_sets and not set(ours_sets) & set(paper_sets):
        lines += ["", f"Ours on {', '.join(ours_sets)}, the paper on {', '.join(paper_sets)}: compare orderings only."]
    if order := ordering(report_rows):
        lines += ["", *order]
    overrides = "".join(f" --set {o}" for o in meta["overrides"]) + (f" --seeds {seeds}" if seeds > 1 else "")
    lines += [
        "",
        f"Regenerate: `python jobs/sweep.py {meta['space_file']} --budget {meta['budget']}{overrides}` "
        f"then `python jobs/report.py outputs/sweeps/{meta['name']}`.",
    ]
    return "\n".join(lines) + "\n"


def csv(report_rows: list[ReportRow], seeds: int = 1) -> str:
    """One line per setting and set; with ``seeds`` > 1, the means and their ``_std`` and ``seeds`` columns."""
    head = ["setting", "status", "step", "val_psnr_y", "set", "ours_psnr_y", "ours_ssim_y", "paper_psnr_y"]
    head += ["paper_ssim_y", *(["seeds", "val_psnr_y_std", "ours_psnr_y_std", "ours_ssim_y_std"] if seeds > 1 else [])]
    lines = []
    for r in report_rows:
        for s in dict.fromkeys([*r.ours, *r.paper]):
            o, p = r.ours.get(s, []) + [math.nan] * 2, r.paper.get(s, []) + [math.nan] * 2
            d = r.spread.get(s, []) + [math.nan] * 2
            line = [r.setting, r.status, r.step, f"{r.val:.6f}", s, *(f"{x:.6f}" for x in (o[0], o[1], p[0], p[1]))]
            lines.append(line + ([r.seeds, *(f"{x:.6f}" for x in (r.val_std, d[0], d[1]))] if seeds > 1 else []))
    return csv_text(head, lines, quoted=["setting"])


def plot(report_rows: list[ReportRow], title: str, path: Path) -> Path:
    """Left: mean PSNR-Y per setting, ours (bars) and the paper's (markers, own axis). Right: val curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    x = list(range(len(report_rows)))
    ours = [score(r) for r in report_rows]
    bars: dict[str, Any] = {}
    if any(r.seeds > 1 for r in report_rows):  # mean ± std over the seeds
        err = [mean_std(r.scores)[1] for r in report_rows]
        bars = {"yerr": [e if e == e else 0 for e in err], "capsize": 4}
    left.bar(x, [v if v == v else 0 for v in ours], color="tab:blue", label="ours", **bars)
    finite = [v for v in ours if v == v]
    if finite:
        left.set_ylim(min(finite) - 0.5, max(finite) + 0.3)
    left.set_ylabel("ours: PSNR-Y (dB)")
    left.set_xticks(x, [r.setting for r in report_rows], rotation=30, ha="right", fontsize=7)
    if any(r.paper for r in report_rows):
        twin = left.twinx()
        twin.plot(x, [_mean(r.paper) for r in report_rows], "o", color="tab:red", label="paper")
        twin.set_ylabel("paper: PSNR-Y (dB)", color="tab:red")
    left.set_title("final model, mean over test sets" + (" (± std over seeds)" if bars else ""))
    for k, r in enumerate(report_rows):
        if r.seeds > 1:  # one colour per setting, one curve per seed
            for i, h in enumerate(c for c in r.histories if c):
                steps, vals = zip(*h, strict=True)
                right.plot(steps, vals, marker=".", color=f"C{k % 10}", label=None if i else r.setting[:40])
        elif r.history:
            steps, vals = zip(*r.history, strict=True)
            right.plot(steps, vals, marker=".", label=r.setting[:40])
    right.set_xlabel("step")
    right.set_ylabel("validation PSNR-Y (dB)")
    right.set_title("validation during training")
    if len(report_rows) <= 12:
        right.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def trials_markdown(title: str, trials: list[dict[str, Any]]) -> str:
    """One line per trial (``results.md``): row, sampled values, status, step, validation and final PSNR-Y."""
    sets = list(dict.fromkeys(s for t in trials for s in t["eval"]["ours"]))
    seeds = any("seed" in t for t in trials)  # only a --seeds sweep's trials carry their seed
    head = ["trial", "row", *(["seed"] if seeds else []), "sampled", "status", "step", "val PSNR-Y"]
    head += [*[f"{s} PSNR / SSIM" for s in sets], "bicubic"]
    body = []
    for t in trials:
        sampled = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        cells = [
            f"{t['eval']['ours'][s][0]:.2f} / {t['eval']['ours'][s][1]:.4f}" if s in t["eval"]["ours"] else "-"
            for s in sets
        ]
        bic = "; ".join(f"{s} {v[0]:.2f}" for s, v in t["eval"][BICUBIC].items()) or "-"
        row = [t["trial"], t["row"] or "-", *([str(t.get("seed", "-"))] if seeds else []), sampled or "-"]
        row += [t["status"], str(t["step"]), f"{t['val']:.2f}", *cells, bic]
        body.append(row)
    return "\n".join([f"**{title}**", "", markdown_table(head, body)]) + "\n"


def trials_csv(trials: list[dict[str, Any]]) -> str:
    """``results.csv``: one line per trial and evaluated set."""
    seeds = any("seed" in t for t in trials)  # only a --seeds sweep's trials carry their seed
    head = ["trial", "row", "status", "step", "val_psnr_y", "set", "psnr_y", "ssim_y", "bicubic_psnr_y", "params"]
    head += ["seed"] if seeds else []
    lines = []
    for t in trials:
        params = json.dumps(t["params"])
        for test_set, (p, s) in (t["eval"]["ours"] or {"": [math.nan, math.nan]}).items():
            bic = t["eval"][BICUBIC].get(test_set, [math.nan])[0]
            line = [t["trial"], t["row"] or "", t["status"], t["step"], f"{t['val']:.6f}", test_set]
            line += [f"{p:.6f}", f"{s:.6f}", f"{bic:.6f}", params, *([t.get("seed", "")] if seeds else [])]
            lines.append(line)
    return csv_text(head, lines, quoted=["row", "params"])


def write_report(folder: str | Path, to_mlflow: bool = True) -> list[Path]:
    """report.md, report.csv and report.png of the sweep in ``folder``; logged to its MLflow parent run."""
    folder = Path(folder)
    meta = json.loads((folder / "sweep.json").read_text())
    report_rows = rows(meta, load_space(folder / "space.yaml"))
    files = [folder / "report.md", folder / "report.csv", folder / "report.png"]
    files[0].write_text(markdown(meta, report_rows))
    files[1].write_text(csv(report_rows, meta.get("seeds", 1)))
    plot(report_rows, meta["title"], files[2])
    if to_mlflow and meta.get("parent_run_id"):
        try:
            log_evaluation(meta["tracking_uri"], meta["parent_run_id"], meta["name"], {}, files, "report")
        except Exception as e:  # the files are written; a tracking failure must not lose them
            log.warning("could not log the report to MLflow run %s: %s", meta["parent_run_id"], e)
    return files
