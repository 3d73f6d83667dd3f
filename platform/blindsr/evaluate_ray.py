"""Evaluation spread over a Ray cluster: the cases of a table are scored in parallel Ray tasks.

Each task loads the models itself from their sources (registry URIs or checkpoint folders, which every node
must be able to read) and scores a slice of the cases with :func:`blindsr.evaluate.score_case`; the driver
averages them with :func:`blindsr.evaluate.tabulate`. Every random choice is seeded per case, so the
numbers equal the local run's.
"""

from __future__ import annotations

import ray

from blindsr.evaluate import BICUBIC, Case, ImageScore, Table, score_case, score_rows, tabulate
from blindsr.infer import load


@ray.remote
def _score_slice(
    sources: list[str],
    tracking_uri: str | None,
    cases: list[Case],
    indices: list[int],
    scale: int,
    seed: int,
    tile: int,
) -> tuple[list[str], dict[int, list[ImageScore]]]:
    models = {source: load(source, tracking_uri) for source in sources}
    runs = score_rows(models, scale)
    return [*runs], {i: score_case(runs, cases, i, scale, seed, tile) for i in indices}


def score_cases_on_ray(
    sources: list[str],
    cases: list[Case],
    scale: int,
    title: str,
    tracking_uri: str | None = None,
    seed: int = 0,
    tile: int = 0,
    tasks: int | None = None,
    cpus_per_task: float = 1.0,
) -> Table:
    """Like ``score_cases`` for models given by source, with the cases split over ``tasks`` Ray tasks
    (default: one per CPU of the cluster, at most one per case). Connects to Ray if needed."""
    if not ray.is_initialized():
        ray.init()
    tasks = tasks or max(1, min(len(cases), int(ray.cluster_resources().get("CPU", 1) // cpus_per_task)))
    cases_ref = ray.put(cases)
    slices = [list(range(len(cases)))[k::tasks] for k in range(tasks)]
    refs = [
        _score_slice.options(num_cpus=cpus_per_task).remote(sources, tracking_uri, cases_ref, idx, scale, seed, tile)
        for idx in slices
        if idx
    ]
    results = ray.get(refs)
    by_case = {i: scores for _, part in results for i, scores in part.items()}
    images = [s for i in sorted(by_case) for s in by_case[i]]  # case order, as the local run writes them
    return tabulate(title, cases, [*results[0][0], BICUBIC], images)
