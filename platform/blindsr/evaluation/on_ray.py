"""The evaluation fanned out over a Ray cluster (a declared Ray module): the cases are scored in Ray tasks.

Each task loads the models itself from their sources (registry URIs or checkpoint folders, which every node
must be able to read) and scores a slice of the cases with :func:`blindsr.evaluation.scoring.score_case`.
Every random choice is seeded per case, so the scores equal the local run's.
"""

from __future__ import annotations

from collections.abc import Mapping

import ray

from blindsr.evaluation.cases import Case
from blindsr.evaluation.scoring import score_case, score_rows
from blindsr.evaluation.table import ImageScore
from blindsr.infer import load
from blindsr.ray_session import ensure_ray


@ray.remote
def _score_slice(
    sources: dict[str, str],
    tracking_uri: str | None,
    cases: list[Case],
    indices: list[int],
    scale: int,
    seed: int,
    tile: int,
    oracle: bool,
) -> dict[int, list[ImageScore]]:
    models = {row: load(source, tracking_uri) for row, source in sources.items()}
    runs = score_rows(models, scale, oracle)
    return {i: score_case(runs, cases, i, scale, seed, tile) for i in indices}


def score_on_ray(
    sources: Mapping[str, str],
    cases: list[Case],
    scale: int,
    tracking_uri: str | None = None,
    seed: int = 0,
    tile: int = 0,
    oracle: bool = True,
    tasks: int | None = None,
    cpus_per_task: float = 1.0,
) -> list[ImageScore]:
    """Every case's scores, in case order, from ``tasks`` Ray tasks (default: one per CPU of the cluster, at
    most one per case). Connects to Ray ($RAY_ADDRESS or a local one) if needed."""
    ensure_ray()
    tasks = tasks or max(1, min(len(cases), int(ray.cluster_resources().get("CPU", 1) // cpus_per_task)))
    cases_ref = ray.put(cases)
    slices = [list(range(len(cases)))[k::tasks] for k in range(tasks)]
    refs = [
        _score_slice.options(num_cpus=cpus_per_task).remote(
            dict(sources), tracking_uri, cases_ref, idx, scale, seed, tile, oracle
        )
        for idx in slices
        if idx
    ]
    by_case = {i: scores for part in ray.get(refs) for i, scores in part.items()}
    return [s for i in sorted(by_case) for s in by_case[i]]
