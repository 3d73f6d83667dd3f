"""Test sets as MLflow 3 datasets: a name, a digest of its files and where it lives, logged as a run's input
and named on every metric scored on it, so logged models can be searched per dataset (``search_logged_models
(datasets=[{"dataset_name": …, "dataset_digest": …}])``). Metadata only: the images stay where they are.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

CONTEXT = "evaluation"  # the run input's mlflow.data.context tag


@dataclass(frozen=True)
class EvalSet:
    """A test set: ``name`` (its column in tables), ``digest`` of its files (and of how they were cut), ``source``
    (a folder, or ``corpus`` for the built-in images) and ``images`` (how many)."""

    name: str
    digest: str
    source: str
    images: int = 0


def mlflow_dataset(eval_set: EvalSet) -> Any:
    """``eval_set`` as an ``mlflow.data`` MetaDataset: a local source for a folder, a code source for the corpus."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    if eval_set.source == "corpus":
        source = CodeDatasetSource(tags={"blindsr.source": "corpus", "images": str(eval_set.images)})
    else:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": two local sources, same class
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(eval_set.source)
    return MetaDataset(source, name=eval_set.name, digest=eval_set.digest)


def run_inputs(eval_set: EvalSet | None, model_id: str | None) -> dict[str, list[Any]]:
    """``MlflowClient.log_inputs`` keywords: the set as an evaluation dataset, the model as a logged-model input."""
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    datasets = []
    if eval_set is not None:
        entity = mlflow_dataset(eval_set)._to_mlflow_entity()
        datasets.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXT)]))
    return {"datasets": datasets, "models": [LoggedModelInput(model_id)] if model_id else []}
