"""Leaderboard rows: one per method (the registered versions of one config, its seeds pooled into mean ± std),
its scores per protocol and test set, and the published entry beside it: the paper's method of the same family
with the nearest parameter count; the other published entries get rows of their own. No Ray, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from blindsr.evaluation.table import BICUBIC
from blindsr.published import Catalogue, Published
from blindsr.report import mean_std

Key = tuple[str, int]  # (protocol, scale): one table


@dataclass(frozen=True)
class Version:
    """One registered model version: ``config`` groups versions that differ only by ``seed``."""

    name: str
    version: str
    family: str | None
    config: str
    seed: str | None = None
    parameters: int | None = None
    flops: int | None = None


@dataclass(frozen=True)
class Score:
    """What one version scored under one protocol on one set (metrics ``eval/<protocol>/<set>/<column>/…``)."""

    name: str
    version: str
    protocol: str
    scale: int
    set: str
    metrics: dict[str, float]


@dataclass
class Row:
    method: str
    versions: list[str]
    family: str | None = None
    seeds: int = 1
    parameters: int | None = None
    flops: int | None = None
    ours: dict[tuple[str, int, str], list[tuple[float, float]]] = field(default_factory=dict)  # column: mean, std
    paper: dict[Key, Published] = field(default_factory=dict)


def _column(metrics: dict[str, float], protocol: str, test_set: str, column: str, suffix: str = "") -> float:
    return metrics.get(f"eval/{protocol}/{test_set}/{column}/psnr_y{suffix}", math.nan)


def build_rows(versions: Sequence[Version], scores: Sequence[Score], catalogue: Catalogue) -> list[Row]:
    """Our rows (versions of one name and config pooled), bicubic's, then published entries beside no row."""
    groups: dict[tuple[str, str], list[Version]] = {}
    for v in versions:
        groups.setdefault((v.name, v.config), []).append(v)
    by_version = {(s.name, s.version, s.protocol, s.scale, s.set): s for s in scores}
    cells = sorted({(s.protocol, s.scale, s.set) for s in scores})
    rows, bicubic = [], Row(BICUBIC, [])
    for (name, _), members in groups.items():
        first = members[0]
        row = Row(name, [m.version for m in members], first.family, len({m.seed or m.version for m in members}))
        row.parameters, row.flops = first.parameters, first.flops
        for p, s, t in cells:
            got = [
                by_version[(m.name, m.version, p, s, t)].metrics
                for m in members
                if (m.name, m.version, p, s, t) in by_version
            ]
            if got:
                cols = catalogue.columns(p, s)
                row.ours[(p, s, t)] = [mean_std([_column(g, p, t, c) for g in got]) for c in cols]
                bicubic.ours.setdefault((p, s, t), [(_column(got[0], p, t, c, "_bicubic"), math.nan) for c in cols])
        rows.append(row)
    papers: list[Row] = []  # published methods beside none of ours
    for key in sorted({(p, s) for p, s, _ in cells}):  # published entries only beside tables we scored
        unplaced = list(catalogue.find(*key))
        for row in rows:
            mine = [e for e in unplaced if e.family and e.family == row.family]
            if mine and any(k[:2] == key for k in row.ours):
                size = (row.parameters or 0) / 1e6
                best = min(mine, key=lambda e: abs((e.params_m or 0) - size))
                row.paper[key] = best
                unplaced.remove(best)
        for e in unplaced:  # one row per published method, whatever tables it is in (its size: the first given)
            size = None if e.params_m is None else round(e.params_m * 1e6)
            found = [r for r in papers if r.method == e.method]
            row = found[0] if found else Row(e.method, [], e.family, 0)
            row.paper[key], row.parameters = e, row.parameters or size
            papers += [] if found else [row]
    ours = sorted(rows, key=lambda r: -_score(r))
    return [*ours, *([bicubic] if bicubic.ours else []), *papers]


def _score(row: Row) -> float:
    vals = [v[0][0] for v in row.ours.values() if v and v[0][0] == v[0][0]]
    return sum(vals) / len(vals) if vals else -math.inf


def config_key(params: dict[str, str]) -> str:
    """What makes two training runs the same method: their config apart from seed, names, places and resources."""
    keep = ("scale", "degradation.", "model.", "loss.", "optim.", "train.steps", "train.precision", "train.ema_decay")
    keep += ("data.source", "data.patch_size", "data.patches_per_task", "data.tasks_per_step", "data.augment")
    return repr(sorted((k, v) for k, v in params.items() if k.startswith(keep)))
