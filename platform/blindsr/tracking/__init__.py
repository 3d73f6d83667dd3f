"""MLflow tracking and model registry: the only package that imports ``mlflow``.

``store``: where tracking goes and whether it answers; ``auth``: credentials and users of an authenticated
server; ``runs``: the rank-0 run of a training job (``Tracker``); ``registry``: models, aliases, evaluations.
"""

from blindsr.tracking.auth import add_user, grant_training, refusal
from blindsr.tracking.registry import (
    RegistryError,
    VersionInfo,
    list_versions,
    load_model,
    log_evaluation,
    promote,
    refused_as_error,
    run_page,
    set_alias,
    source_run,
    version_metrics,
)
from blindsr.tracking.runs import Tracker, close_run
from blindsr.tracking.store import (
    RUN_NAME_TAG,
    VAL_METRIC_TAG,
    experiment_name,
    reachable,
    registered_name,
    resolve_uri,
)

__all__ = [
    "RUN_NAME_TAG",
    "VAL_METRIC_TAG",
    "RegistryError",
    "Tracker",
    "VersionInfo",
    "add_user",
    "close_run",
    "experiment_name",
    "grant_training",
    "list_versions",
    "load_model",
    "log_evaluation",
    "promote",
    "reachable",
    "refusal",
    "refused_as_error",
    "registered_name",
    "resolve_uri",
    "run_page",
    "set_alias",
    "source_run",
    "version_metrics",
]
