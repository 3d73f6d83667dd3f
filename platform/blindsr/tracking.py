"""MLflow tracking and model registry: the only module that imports ``mlflow``.

Everything here runs on rank 0 only (``Tracker(enabled=rank == 0)``) and never lets a tracking failure stop
training: the first failure warns once, later calls become no-ops, and ``summary()`` says at the end
what was not logged. The tracking URI is resolved once on the driver (``resolve_uri``) and handed to the
workers inside the config, because a Ray job's or trial's working directory is a temporary folder.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

RUN_NAME_TAG = "blindsr.run_name"
VAL_METRIC_TAG = "val_psnr_y"
START, END = "run start and params", "run end"  # Tracker's names of the two lifecycle calls


def resolve_uri(configured: str | None, project_dir: str | Path | None = None) -> str:
    """``tracking.tracking_uri`` if set, else ``$MLFLOW_TRACKING_URI``, else an absolute
    ``sqlite:///<project>/mlflow.db`` (MLflow 3 refuses a plain ``./mlruns`` file store)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(project_dir or Path.cwd()).resolve() / 'mlflow.db'}"


def reachable(uri: str, timeout: float = 5.0) -> str | None:
    """None when ``uri`` can be used, else a one-line reason (HTTP servers are probed, files checked)."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                return None if r.status == 200 else f"{uri} answered HTTP {r.status}"
        except OSError as e:
            return f"MLflow server {uri} is unreachable ({e})"
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        return None if folder.is_dir() or not folder.exists() else f"{folder}, the SQLite store's folder, is a file"
    return None


def experiment_name(model_name: str, configured: str | None) -> str:
    """One experiment per model family unless the config names one."""
    return configured or f"blindsr-{model_name}"


def registered_name(model_name: str, scale: int) -> str:
    return f"{model_name}_x{scale}"


class Tracker:
    """Rank-0 MLflow run that never stops training. A failed call is skipped and warned about (once); calls
    in the next ``retry_after`` seconds are skipped untried, then tracking is tried again (starting the run
    then if it could not be started before), so a slow or restarted server is used again. The model and
    the run end are always tried. ``skipped`` records what was not logged; ``summary()`` says it in a line."""

    def __init__(self, uri: str, enabled: bool = True, retry_after: float = 30.0) -> None:
        self.uri, self.enabled, self.retry_after = uri, enabled, retry_after
        self.skipped: dict[str, list[int]] = {}  # what was not logged → at which steps (if step-bound)
        self.run_id: str | None = None
        self._warned = False
        self._paused_until = 0.0  # monotonic time before which calls are skipped untried
        self._start_args: tuple[str, str, dict[str, Any], dict[str, str] | None] | None = None
        if enabled:
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # one retry, then skip and move on
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
            reason = reachable(uri, timeout=30)
            if reason:
                self._fail("start", reason)

    def _skip(self, what: str, step: int | None) -> None:
        steps = self.skipped.setdefault(what, [])
        if step is not None:
            steps.append(step)

    def _fail(self, what: str, reason: object, step: int | None = None) -> None:
        self._skip(what, step)
        self._paused_until = time.monotonic() + self.retry_after
        if not self._warned:
            log.warning(
                "MLflow tracking at %s failed (%s); training continues, tracking is retried every %g s",
                self.uri,
                str(reason).splitlines()[0] if str(reason) else type(reason).__name__,
                self.retry_after,
            )
            self._warned = True

    def _guard(self, what: str, fn: Callable[[], Any], step: int | None = None, always: bool = False) -> Any:
        if not self.enabled:
            return None
        if not always and time.monotonic() < self._paused_until:
            self._skip(what, step)
            return None
        if self.run_id is None and what != START:
            if what != END and self._start_args is not None:
                self._open()  # the run could not be started before: the server may be back
            if self.run_id is None:
                self._skip(what, step)
                return None
        try:
            return fn()
        except Exception as e:  # any tracking error must not stop training
            self._fail(what, e, step)
            return None

    # ---- run lifecycle ------------------------------------------------------------------------
    def start(self, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        """Open the run named ``run_name`` in ``experiment``, reusing an earlier run of that name so a
        resumed or restarted job continues its run instead of creating a duplicate."""
        self._start_args = (experiment, run_name, params, tags)
        self._open()

    def _open(self) -> None:
        assert self._start_args is not None
        experiment, run_name, params, tags = self._start_args

        def go() -> None:
            import mlflow

            mlflow.set_tracking_uri(self.uri)
            client = mlflow.MlflowClient(self.uri)
            exp = client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
            found = client.search_runs(
                [exp_id],
                f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if found:
                run = mlflow.start_run(run_id=found[0].info.run_id)
            else:
                run = mlflow.start_run(
                    experiment_id=exp_id, run_name=run_name, tags={RUN_NAME_TAG: run_name, **(tags or {})}
                )
            self.run_id = run.info.run_id
            if not found:
                mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})

        self._guard(START, go, always=True)
        if self.run_id is not None:
            self.skipped.pop("start", None)
            self.skipped.pop(START, None)

    def end(self, status: str = "FINISHED") -> None:
        def go() -> None:
            import mlflow

            mlflow.end_run(status=status)

        self._guard(END, go, always=True)

    # ---- logging --------------------------------------------------------------------------------
    def metrics(self, values: dict[str, float], step: int) -> None:
        def go() -> None:
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=step)

        self._guard("metrics", go, step)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        def go() -> None:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=folder)

        self._guard(f"artifact {Path(path).name}", go)

    def image(self, pixels: np.ndarray, name: str, step: int | None = None) -> None:
        """pixels: (H, W, 3) uint8, stored as a PNG artifact ``name`` (``step``: for the summary only)."""

        def go() -> None:
            import mlflow

            mlflow.log_image(pixels, artifact_file=name)

        self._guard("sample images" if step is not None else f"image {name}", go, step)

    # ---- models and registry --------------------------------------------------------------------
    def log_model(
        self, model: nn.Module, registered: str | None, example: torch.Tensor, val_psnr: float | None
    ) -> str | None:
        """Log ``model`` (pickle serialisation: SR nets take any size, torch.export would pin it), register it
        as ``registered`` (``models:/<name>@latest`` then resolves to it) and move alias ``champion`` only
        when ``val_psnr`` beats the current champion's. Returns the new version or None."""

        def go() -> str | None:
            import mlflow
            from mlflow.models import ModelSignature
            from mlflow.types import Schema, TensorSpec

            spec = TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))
            signature = ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
            info = mlflow.pytorch.log_model(
                model.cpu().eval(),
                name="model",
                serialization_format="pickle",
                signature=signature,
                input_example=example.cpu().numpy(),
                registered_model_name=registered,
            )
            if registered is None:
                return None
            version = str(info.registered_model_version)
            promote(self.uri, registered, version, val_psnr)
            return version

        return self._guard("model and registry", go, always=True)

    def summary(self) -> str:
        """One line: all logged, or what was not (metrics condensed to their step range)."""
        if not self.skipped:
            return "all tracking calls succeeded" if self.run_id else "tracking disabled on this rank"
        parts = []
        for what, steps in self.skipped.items():
            at = sorted(set(steps))
            if len(at) == 1:
                what += f" at step {at[0]}"
            elif at:
                what += f" at {len(at)} steps ({at[0]}–{at[-1]})"
            parts.append(what)
        return f"not logged to MLflow ({self.uri}): " + "; ".join(parts)


def close_run(uri: str, experiment: str, run_name: str, status: str) -> str | None:
    """Set the run named ``run_name`` to ``status`` if it is still RUNNING (the driver's close of a run whose
    workers died or could not log its end). Never raises: returns None when done or nothing to do, else the
    reason it could not (the store unreachable or absent)."""
    if reason := reachable(uri):
        return reason
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None  # no store, so no run to close
    try:
        import mlflow

        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], f"tags.`{RUN_NAME_TAG}` = '{run_name}'") if exp else []
        for run in runs:
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status)
    except Exception as e:  # closing is best effort: the training's own error is what the user must see
        log.warning("could not close MLflow run %s as %s: %s", run_name, status, e)
        return str(e)
    return None


class RegistryError(LookupError):
    """A model URI, registered model, version or alias that does not resolve, or a store that is absent."""


def _client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``; a SQLite store must already exist (a read must never create one)."""
    import mlflow

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise RegistryError(f"no MLflow store at {uri} (pass --tracking-uri or set MLFLOW_TRACKING_URI)")
    return mlflow.MlflowClient(uri)


def load_model(uri: str, tracking_uri: str | None = None) -> nn.Module:
    """A registered or logged model (``models:/cdsr_x2@champion``, ``models:/cdsr_x2/3``, ``runs:/<id>/model``)
    as an eval-mode ``nn.Module`` on the CPU. Raises :class:`RegistryError` with a one-line reason."""
    import mlflow

    store = resolve_uri(tracking_uri)
    _client(store)
    mlflow.set_tracking_uri(store)
    try:
        return mlflow.pytorch.load_model(uri, map_location="cpu").eval()
    except (mlflow.exceptions.MlflowException, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
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
        raise RegistryError(f"cannot set {name}@{alias} -> {version}: {str(e).splitlines()[0]}") from e


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


def version_metrics(uri: str, name: str, prefix: str = "eval/") -> dict[str, dict[str, float]]:
    """{version: {metric: latest value}} of the runs behind the versions of ``name``, metrics under ``prefix``."""
    client = _client(uri)
    out: dict[str, dict[str, float]] = {}
    for v in list_versions(uri, name):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        out[v.version] = {k: float(x) for k, x in metrics.items() if k.startswith(prefix)}
    return out


def log_evaluation(
    uri: str, run_id: str | None, run_name: str, metrics: dict[str, float], files: list[Path], folder: str
) -> str:
    """Log evaluation ``metrics`` (step 0) and ``files`` (under artifact folder ``folder``) into ``run_id``, the
    run behind the evaluated model version, or into a new run ``run_name`` of experiment ``blindsr-eval`` when
    the model has no run (a checkpoint folder). Returns the run id."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(uri)  # may create the store: this is a write
    created = run_id is None
    if created:
        exp = client.get_experiment_by_name("blindsr-eval")
        exp_id = exp.experiment_id if exp else client.create_experiment("blindsr-eval")
        run_id = client.create_run(exp_id, run_name=run_name, tags={RUN_NAME_TAG: run_name}).info.run_id
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=items[i : i + 1000])
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path=folder)
    if created:
        client.set_terminated(run_id)
    return run_id
