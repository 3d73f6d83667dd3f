"""The leaderboard: registered models ranked on the field's protocols beside the published numbers.

``sets`` (test sets, their digests and cases), ``rows`` (versions pooled into methods, published entries placed),
``render`` (Markdown, CSV, plot). The MLflow side (versions, cache, logging) is :mod:`blindsr.tracking.leaderboard`.
"""

from blindsr.leaderboard.render import page, plot, to_csv
from blindsr.leaderboard.rows import Row, Score, Version, build_rows, config_key
from blindsr.leaderboard.sets import eval_sets, set_cases, set_digest

__all__ = [
    "Row",
    "Score",
    "Version",
    "build_rows",
    "config_key",
    "eval_sets",
    "page",
    "plot",
    "set_cases",
    "set_digest",
    "to_csv",
]
