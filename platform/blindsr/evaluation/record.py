"""The one evaluate-and-log path: which test cases (:func:`choose_cases`), which device (``choose_device``),
and how a table's scores reach MLflow (:func:`log_table`). The training jobs, the sweep trials, jobs/evaluate.py
and the leaderboard all go through it, so a model is scored and recorded the same way wherever it is evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from blindsr.data.benchmarks import load_div2krk
from blindsr.data.images import DatasetError
from blindsr.evaluation.cases import Case, benchmark_sets, div2krk_cases, generated_cases, named_set
from blindsr.evaluation.table import Table
from blindsr.models.inference import choose_device
from blindsr.tracking import log_evaluation, source_run
from blindsr.tracking.datasets import EvalSet


def choose_cases(
    protocol: str,
    scale: int,
    *,
    root: str | Path | None = None,
    sets: Sequence[str] | None = None,
    images: Sequence[str | Path] = (),
    val_source: str = "corpus",
    crop: int = 0,
    cache: str | Path | None = None,
    degradations: Sequence[str] | None = None,
) -> list[Case]:
    """The cases of ``protocol`` at ``scale``: DIV2KRK's own pairs under ``root``; else the benchmark ``sets`` under
    ``root`` (every one found when None), plus each folder of ``images`` as a set named after it; with neither,
    the validation images of ``val_source`` (the built-in corpus by default). ``crop`` > 0 centre-crops HR."""
    if root and not Path(root).expanduser().is_dir():
        raise DatasetError(f"--root {root} does not exist or is not a folder")
    if protocol == "div2krk":
        if images:
            raise DatasetError("--images needs a generated protocol: div2krk reads its own LR")
        if not root:
            raise DatasetError("--protocol div2krk needs --root pointing at the DIV2KRK folder")
        return div2krk_cases(load_div2krk(root, scale), scale, crop)
    found = benchmark_sets(root, sets, scale) if root else {}
    for folder in images:
        if not Path(folder).expanduser().is_dir():
            raise DatasetError(f"--images {folder} does not exist or is not a folder")
        named = named_set(str(folder), scale)
        if set(named) & set(found):
            raise DatasetError(f"--images {folder}: a test set named {next(iter(named))!r} is already evaluated")
        found.update(named)
    if not found:
        found = named_set(val_source, scale)
    return generated_cases(protocol, scale, found, crop, cache, degradations=degradations)


def log_table(
    uri: str,
    table: Table,
    protocol: str,
    runs: Mapping[str, str | None],
    files: list[Path] | tuple[()] = (),
    folder: str | None = None,
    eval_set: EvalSet | None = None,
    model_ids: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """Log each evaluated model's scores (``table.model_metrics``: its row, bicubic's, its oracle row) into its run:
    ``runs`` maps a table row to the run behind it, or to None to find it from a ``models:/``/``runs:/`` row name
    (a checkpoint folder gets a new ``blindsr-eval`` run). ``files`` go under ``folder`` (default ``eval/<protocol>``).
    A table of one test set may name it (``eval_set``) and each row's MLflow 3 logged model (``model_ids``): the
    metrics are then tied to both. Returns {row: run id}."""
    logged, folder = {}, folder or f"eval/{protocol}"
    for row, run in runs.items():
        metrics = table.model_metrics(protocol, row)
        tie = {"eval_set": eval_set, "model_id": (model_ids or {}).get(row)}
        logged[row] = log_evaluation(
            uri, run or source_run(row, uri), f"eval-{Path(row).name}", metrics, files, folder, **tie
        )
    return logged


__all__ = ["choose_cases", "choose_device", "log_table"]
