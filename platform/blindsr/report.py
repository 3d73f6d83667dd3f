"""Paper-style sweep reports: rows = settings, columns = test sets, ours beside the paper's number.

Reads a finished sweep's folder (``outputs/sweeps/<name>``: ``sweep.json`` + ``space.yaml``, written by
:func:`blindsr.tune.run_sweep`), writes ``report.md``, ``report.csv`` and ``report.png`` (PSNR per setting, ours
against the paper's; validation curves of every trial) into it and logs them to the sweep's MLflow parent run.
No Ray. Where our test sets differ from the paper's (the built-in corpus instead of Set5 …), both are shown
and the comparison is of the orderings only, which the report states.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindsr.evaluation import BICUBIC
from blindsr.space import Space, load_space
from blindsr.tracking import log_evaluation

log = logging.getLogger(__name__)


@dataclass
class ReportRow:
    setting: str
    status: str
    step: int
    val: float
    ours: dict[str, list[float]]  # set → [psnr, ssim]
    paper: dict[str, list[float]]  # set → [psnr] or [psnr, ssim]
    history: list[list[float]]


def _fmt(values: list[float] | None) -> str:
    if not values or values[0] != values[0]:
        return "-"
    return f"{values[0]:.2f}" + (f" / {values[1]:.4f}" if len(values) > 1 else "")


def _sampled(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def rows(meta: dict[str, Any], space: Space) -> list[ReportRow]:
    """One row per trial, labelled by its row label and its sampled values, in the file's row order."""
    out = []
    for t in meta["trials"]:
        row = space.row(t["row"])
        label = ", ".join(x for x in (t["row"], _sampled(t["params"])) if x) or t["trial"]
        out.append(
            ReportRow(
                label, t["status"], t["step"], t["val"], t["eval"]["ours"], row.paper if row else {}, t["history"]
            )
        )
    return out


def _mean(cells: dict[str, list[float]]) -> float:
    vals = [v[0] for v in cells.values() if v and v[0] == v[0]]
    return sum(vals) / len(vals) if vals else math.nan


def ordering(report_rows: list[ReportRow]) -> list[str]:
    """Lines comparing the best-first order of the settings, ours (mean over our sets) vs the paper's."""
    both = [r for r in report_rows if r.paper and r.ours]
    if len(both) < 2:
        return []
    ours = [r.setting for r in sorted(both, key=lambda r: -_mean(r.ours))]
    paper = [r.setting for r in sorted(both, key=lambda r: -_mean(r.paper))]
    same = "yes" if ours == paper else "no: the reduced budget does not reproduce the paper's ordering"
    return [
        f"- paper, best first: {' > '.join(paper)}",
        f"- ours, best first: {' > '.join(ours)}",
        f"- same ordering: {same}",
        f"- same best setting: {'yes' if ours[0] == paper[0] else 'no'} (paper: {paper[0]}; ours: {ours[0]})",
    ]


def markdown(meta: dict[str, Any], report_rows: list[ReportRow]) -> str:
    ours_sets = list(dict.fromkeys(s for r in report_rows for s in r.ours))
    paper_sets = list(dict.fromkeys(s for r in report_rows for s in r.paper))
    cols: list[tuple[str, str]] = []
    for s in ours_sets:
        cols.append((s, "ours"))
        if s in paper_sets:
            cols.append((s, "paper"))
    cols += [(s, "paper") for s in paper_sets if s not in ours_sets]
    head = ["setting", *[f"{s} ({who})" for s, who in cols], "val PSNR-Y", "step", "status"]
    ev = meta["evaluate"]
    degs = ", ".join(ev["degradations"]) if ev["degradations"] else "mean over all"
    lines = [
        f"### {meta['title']}",
        "",
        f"Budget `{meta['budget']}` at x{meta['scale']}; PSNR-Y dB (/ SSIM-Y) of the final model, protocol "
        f"`{ev['protocol']}` ({degs}), HR crop {ev['crop'] or 'none'}. Sweep `{meta['name']}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for r in report_rows:
        cells = [_fmt((r.ours if who == "ours" else r.paper).get(s)) for s, who in cols]
        lines.append("| " + " | ".join([r.setting, *cells, f"{r.val:.2f}", str(r.step), r.status]) + " |")
    bicubic = next((t["eval"]["bicubic"] for t in meta["trials"] if t["eval"]["bicubic"]), {})
    if bicubic:
        cells = [_fmt(bicubic.get(s)) if who == "ours" else "-" for s, who in cols]
        lines.append("| " + " | ".join(["bicubic (reference)", *cells, "-", "-", "reference"]) + " |")
    if ours_sets and paper_sets and not set(ours_sets) & set(paper_sets):
        lines += ["", f"Ours on {', '.join(ours_sets)}, the paper on {', '.join(paper_sets)}: compare orderings only."]
    if order := ordering(report_rows):
        lines += ["", *order]
    overrides = "".join(f" --set {o}" for o in meta["overrides"])
    lines += [
        "",
        f"Regenerate: `python jobs/sweep.py {meta['space_file']} --budget {meta['budget']}{overrides}` "
        f"then `python jobs/report.py outputs/sweeps/{meta['name']}`.",
    ]
    return "\n".join(lines) + "\n"


def csv(report_rows: list[ReportRow]) -> str:
    lines = ["setting,status,step,val_psnr_y,set,ours_psnr_y,ours_ssim_y,paper_psnr_y,paper_ssim_y"]
    for r in report_rows:
        for s in dict.fromkeys([*r.ours, *r.paper]):
            o, p = r.ours.get(s, []) + [math.nan] * 2, r.paper.get(s, []) + [math.nan] * 2
            lines.append(
                f'"{r.setting}",{r.status},{r.step},{r.val:.6f},{s},{o[0]:.6f},{o[1]:.6f},{p[0]:.6f},{p[1]:.6f}'
            )
    return "\n".join(lines) + "\n"


def plot(report_rows: list[ReportRow], title: str, path: Path) -> Path:
    """Left: mean PSNR-Y per setting, ours (bars) and the paper's (markers, own axis). Right: val curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    x = list(range(len(report_rows)))
    ours = [_mean(r.ours) for r in report_rows]
    left.bar(x, [v if v == v else 0 for v in ours], color="tab:blue", label="ours")
    finite = [v for v in ours if v == v]
    if finite:
        left.set_ylim(min(finite) - 0.5, max(finite) + 0.3)
    left.set_ylabel("ours: PSNR-Y (dB)")
    left.set_xticks(x, [r.setting for r in report_rows], rotation=30, ha="right", fontsize=7)
    if any(r.paper for r in report_rows):
        twin = left.twinx()
        twin.plot(x, [_mean(r.paper) for r in report_rows], "o", color="tab:red", label="paper")
        twin.set_ylabel("paper: PSNR-Y (dB)", color="tab:red")
    left.set_title("final model, mean over test sets")
    for r in report_rows:
        if r.history:
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
    head = ["trial", "row", "sampled", "status", "step", "val PSNR-Y", *[f"{s} PSNR / SSIM" for s in sets], "bicubic"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for t in trials:
        sampled = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        cells = [
            f"{t['eval']['ours'][s][0]:.2f} / {t['eval']['ours'][s][1]:.4f}" if s in t["eval"]["ours"] else "-"
            for s in sets
        ]
        bic = "; ".join(f"{s} {v[0]:.2f}" for s, v in t["eval"][BICUBIC].items()) or "-"
        row = [t["trial"], t["row"] or "-", sampled or "-", t["status"], str(t["step"]), f"{t['val']:.2f}", *cells, bic]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def trials_csv(trials: list[dict[str, Any]]) -> str:
    """``results.csv``: one line per trial and evaluated set."""
    lines = ["trial,row,status,step,val_psnr_y,set,psnr_y,ssim_y,bicubic_psnr_y,params"]
    for t in trials:
        params = json.dumps(t["params"]).replace('"', '""')
        for test_set, (p, s) in (t["eval"]["ours"] or {"": [math.nan, math.nan]}).items():
            bic = t["eval"][BICUBIC].get(test_set, [math.nan])[0]
            lines.append(
                f'{t["trial"]},"{t["row"] or ""}",{t["status"]},{t["step"]},{t["val"]:.6f},{test_set},{p:.6f},{s:.6f},'
                f'{bic:.6f},"{params}"'
            )
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path, to_mlflow: bool = True) -> list[Path]:
    """report.md, report.csv and report.png of the sweep in ``folder``; logged to its MLflow parent run."""
    folder = Path(folder)
    meta = json.loads((folder / "sweep.json").read_text())
    report_rows = rows(meta, load_space(folder / "space.yaml"))
    files = [folder / "report.md", folder / "report.csv", folder / "report.png"]
    files[0].write_text(markdown(meta, report_rows))
    files[1].write_text(csv(report_rows))
    plot(report_rows, meta["title"], files[2])
    if to_mlflow and meta.get("parent_run_id"):
        try:
            log_evaluation(meta["tracking_uri"], meta["parent_run_id"], meta["name"], {}, files, "report")
        except Exception as e:  # the files are written; a tracking failure must not lose them
            log.warning("could not log the report to MLflow run %s: %s", meta["parent_run_id"], e)
    return files
