"""Evaluation: test cases of a paper protocol, scored by models and bicubic into PSNR/SSIM-Y tables.

``cases`` (what is scored), ``scoring`` (:func:`evaluate`, the one entry point), ``table`` (averages and their
Markdown/CSV/metric forms), ``validation`` (the training loop's fixed subset) and ``on_ray`` (the declared Ray
module: the same scoring fanned out over Ray tasks). Only ``on_ray`` imports Ray, and only when asked for.
"""

from blindsr.evaluation.cases import (
    LEGENDS,
    PROTOCOLS,
    Case,
    benchmark_sets,
    centre_crop,
    div2krk_cases,
    generated_cases,
    named_set,
    oracle_support,
    protocol_specs,
    set_name,
)
from blindsr.evaluation.scoring import bicubic_image, evaluate, score, score_case, score_rows
from blindsr.evaluation.table import BICUBIC, ORACLE, ImageScore, Table, slug, tabulate

__all__ = [
    "BICUBIC",
    "LEGENDS",
    "ORACLE",
    "PROTOCOLS",
    "Case",
    "ImageScore",
    "Table",
    "benchmark_sets",
    "bicubic_image",
    "centre_crop",
    "div2krk_cases",
    "evaluate",
    "generated_cases",
    "named_set",
    "oracle_support",
    "protocol_specs",
    "score",
    "score_case",
    "score_rows",
    "set_name",
    "slug",
    "tabulate",
]
