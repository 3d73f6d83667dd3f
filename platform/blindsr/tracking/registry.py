"""The model registry: load a registered model, promote the champion, list and alias versions, log evaluations.

A server that refuses us (HTTP 401/403) raises :class:`RegistryError` saying "not authorised" and naming the
variables to set, like any other registry problem: the jobs print it as one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from blindsr.errors import UserError
from blindsr.tracking.auth import refusal
from blindsr.tracking.datasets import EvalSet, run_inputs
from blindsr.tracking.store import RUN_NAME_TAG, VAL_METRIC_TAG, resolve_uri

F = TypeVar("F", bound=Callable[..., Any])


class RegistryError(UserError, LookupError):
    """A model URI, registered model, version or alias that does not resolve, or a store that is absent."""


@contextlib.contextmanager
def refused_as_error(uri: str) -> Iterator[None]:
    """Turn the server's 401/403 inside the block into a :class:`RegistryError` that says what to set."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as e:
        if reason := refusal(e, uri):
            raise RegistryError(reason) from e
        raise


def _refusals_as_errors(uri_arg: str) -> Callable[[F], F]:
    """Run the decorated function inside :func:`refused_as_error` on its argument ``uri_arg``."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with refused_as_error(sig.bind(*args, **kwargs).arguments[uri_arg]):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def _client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``; a SQLite store must already exist (a read must never create one)."""
    import mlflow

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise RegistryError(f"no MLflow store at {uri} (pass --tracking-uri or set MLFLOW_TRACKING_URI)")
    return mlflow.MlflowClient(uri)


def load_model(uri: str, tracking_uri: str | None = None) -> nn.Module:
    """A registered or logged model (``models:/cdsr_x2@champion``, ``models:/cdsr_x2/3``, ``runs:/<id>/model``)
    as an eval-mode ``nn.Module`` on the CPU, rebuilt here with ``build_model`` from the model's config.yaml and
    safetensors weights: nothing from the store is executed or unpickled. A version logged before (MLflow's
    pickle format) still loads where pickle is allowed, with a DeprecationWarning. Raises
    :class:`RegistryError` with a one-line reason."""
    import mlflow

    from blindsr.artifacts import registered

    store = resolve_uri(tracking_uri)
    _client(store)
    mlflow.set_tracking_uri(store)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=store))
            if registered.pickled(folder):
                warnings.warn(
                    f"{uri} is in MLflow's pickle format (logged before blindsr used safetensors); loading it runs "
                    "code from the store. Register a new version to move to the safe format.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return mlflow.pytorch.load_model(uri, map_location="cpu").eval()
            return registered.read(folder)
    except (mlflow.exceptions.MlflowException, OSError, KeyError, ValueError, RuntimeError) as e:
        reason = refusal(e, store) or (str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise RegistryError(f"cannot load model {uri} from {store}: {reason}") from e


def promote(uri: str, name: str, version: str, val_psnr: float | None) -> bool:
    """Alias ``champion`` → ``version`` when its validation PSNR beats the champion's (or there is none).

    ``latest`` needs no alias: MLflow reserves that name and resolves ``models:/<name>@latest`` to the
    newest version itself. Returns whether the champion moved."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    if val_psnr is None:
        return False
    client.set_model_version_tag(name, version, VAL_METRIC_TAG, f"{val_psnr:.6f}")
    try:
        champion = client.get_model_version_by_alias(name, "champion")
        best = float(champion.tags.get(VAL_METRIC_TAG, "-inf"))
    except mlflow.exceptions.MlflowException:
        best = float("-inf")
    if val_psnr > best:
        client.set_registered_model_alias(name, "champion", version)
        return True
    return False


# ---- registry queries (jobs/models.py) and evaluation logging (jobs/evaluate.py) ---------------------------


@dataclass
class VersionInfo:
    """One registered model version as ``jobs/models.py`` lists it."""

    name: str
    version: str
    aliases: list[str]
    val_psnr: float | None  # the ``val_psnr_y`` version tag written at registration
    run_id: str | None
    created: str  # UTC, minutes
    tags: dict[str, str]


@_refusals_as_errors("uri")
def list_versions(uri: str, name: str | None = None) -> list[VersionInfo]:
    """Every version of every registered model (or of ``name``), newest first within a model."""
    client = _client(uri)
    models = client.search_registered_models(filter_string=f"name = '{name}'" if name else None)
    if name and not models:
        raise RegistryError(f"no registered model named {name!r} in {uri}")
    out = []
    for rm in sorted(models, key=lambda m: m.name):
        by_version: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name = '{rm.name}'", order_by=["version_number DESC"]):
            tag = v.tags.get(VAL_METRIC_TAG)
            created = datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC)
            out.append(
                VersionInfo(
                    rm.name,
                    str(v.version),
                    sorted(by_version.get(str(v.version), [])),
                    float(tag) if tag is not None else None,
                    v.run_id,
                    created.strftime("%Y-%m-%d %H:%M"),
                    dict(v.tags),
                )
            )
    return out


def set_alias(uri: str, name: str, version: str, alias: str) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (``promote NAME VERSION ALIAS``)."""
    if alias == "latest":
        raise RegistryError("'latest' is reserved: MLflow resolves models:/<name>@latest to the newest version itself")
    client = _client(uri)
    import mlflow

    try:
        client.get_model_version(name, str(version))
        client.set_registered_model_alias(name, alias, str(version))
    except mlflow.exceptions.MlflowException as e:
        reason = refusal(e, uri) or str(e).splitlines()[0]
        raise RegistryError(f"cannot set {name}@{alias} -> {version}: {reason}") from e


@_refusals_as_errors("tracking_uri")
def source_run(model_uri: str, tracking_uri: str) -> str | None:
    """The MLflow run that produced ``model_uri`` (``models:/name@alias``, ``models:/name/3``, ``runs:/<id>/…``),
    or None for URIs without one (a checkpoint folder, a bare logged model)."""
    if model_uri.startswith("runs:/"):
        return model_uri.removeprefix("runs:/").split("/")[0]
    if not model_uri.startswith("models:/") or model_uri.startswith("models:/m-"):
        return None
    ref = model_uri.removeprefix("models:/").rstrip("/")
    client = _client(tracking_uri)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        if alias == "latest":
            versions = list_versions(tracking_uri, name)
            return versions[0].run_id if versions else None
        return client.get_model_version_by_alias(name, alias).run_id
    name, version = ref.rsplit("/", 1)
    return client.get_model_version(name, version).run_id


@_refusals_as_errors("uri")
def version_metrics(uri: str, name: str, prefix: str = "eval/") -> dict[str, dict[str, float]]:
    """{version: {metric: latest value}} of the runs behind the versions of ``name``, metrics under ``prefix``."""
    client = _client(uri)
    out: dict[str, dict[str, float]] = {}
    for v in list_versions(uri, name):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        out[v.version] = {k: float(x) for k, x in metrics.items() if k.startswith(prefix)}
    return out


@_refusals_as_errors("uri")
def log_evaluation(
    uri: str,
    run_id: str | None,
    run_name: str,
    metrics: dict[str, float],
    files: list[Path],
    folder: str,
    eval_set: EvalSet | None = None,
    model_id: str | None = None,
) -> str:
    """Log evaluation ``metrics`` (step 0) and ``files`` (under artifact folder ``folder``) into ``run_id``, the
    run behind the evaluated model version, or into a new run ``run_name`` of experiment ``blindsr-eval`` when
    the model has no run (a checkpoint folder). With ``eval_set`` / ``model_id`` (MLflow 3 dataset tracking) the
    run gets them as inputs and every metric names them, so the logged model carries its scores per dataset.
    Returns the run id."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(uri)  # may create the store: this is a write
    created = run_id is None
    if created:
        exp = client.get_experiment_by_name("blindsr-eval")
        exp_id = exp.experiment_id if exp else client.create_experiment("blindsr-eval")
        run_id = client.create_run(exp_id, run_name=run_name, tags={RUN_NAME_TAG: run_name}).info.run_id
    if eval_set is not None or model_id is not None:
        client.log_inputs(run_id, **run_inputs(eval_set, model_id))
    now = int(time.time() * 1000)
    named = {"dataset_name": eval_set.name, "dataset_digest": eval_set.digest} if eval_set else {}
    items = [Metric(k, float(v), now, 0, model_id=model_id, **named) for k, v in metrics.items()]
    for i in range(0, len(items), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=items[i : i + 1000])
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path=folder)
    if created:
        client.set_terminated(run_id)
    return run_id


@_refusals_as_errors("uri")
def run_page(uri: str, run_id: str) -> str:
    """Where to look at run ``run_id``: its page on a server, or the ``mlflow ui`` command and the page's path."""
    path = f"#/experiments/{_client(uri).get_run(run_id).info.experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"MLflow UI: {uri.rstrip('/')}/{path}"
    return f"MLflow UI: mlflow ui --backend-store-uri {uri}   then open http://127.0.0.1:5000/{path}"
