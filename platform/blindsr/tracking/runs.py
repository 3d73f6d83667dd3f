"""The rank-0 MLflow run of a training job, which never stops training, and the driver's close of a run left open.

Everything here runs on rank 0 only (``Tracker(enabled=rank == 0)``) and never lets a tracking failure stop
training: the first failure warns once, later calls are skipped for a while and then tried again, and
``summary()`` says at the end what was not logged. The tracking URI is resolved once on the driver
(``resolve_uri``) and handed to the workers inside the config, because a Ray job's or trial's working directory
is a temporary folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from blindsr.artifacts import registered as model_format
from blindsr.config import Config
from blindsr.tracking.auth import refusal
from blindsr.tracking.registry import promote
from blindsr.tracking.store import RUN_NAME_TAG, reachable

log = logging.getLogger(__name__)


def requirements() -> list[str]:
    """The pip requirements of a logged model: this package and what its loader imports, at today's versions."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("blindsr", "mlflow", "safetensors", "pyyaml", "numpy")] + [
        f"torch=={torch.__version__.split('+')[0]}"
    ]


START, END = "run start and params", "run end"  # Tracker's names of the two lifecycle calls


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
        self.refused: str | None = None  # the server's newest refusal (401/403), which the summary repeats
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
        if isinstance(reason, BaseException):
            reason = refusal(reason, self.uri) or reason  # a 401/403 says "not authorised", not a stack of HTTP
        if str(reason).startswith("not authorised"):
            self.refused = str(reason)
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
            # no monitor of MLflow's own here, even if its env var asks: the worker starts one per node (system.py)
            if found:
                run = mlflow.start_run(run_id=found[0].info.run_id, log_system_metrics=False)
            else:
                run = mlflow.start_run(
                    experiment_id=exp_id,
                    run_name=run_name,
                    tags={RUN_NAME_TAG: run_name, **(tags or {})},
                    log_system_metrics=False,
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
    def log_model(self, model: nn.Module, cfg: Config, registered: str | None, val_psnr: float | None) -> str | None:
        """Log ``model`` without pickle (its weights as safetensors + ``cfg`` as config.yaml + the loader in
        :mod:`blindsr.tracking.pyfunc`), register it as ``registered`` (``models:/<name>@latest`` then resolves
        to it) and move alias ``champion`` only when ``val_psnr`` beats the current champion's. Returns the new
        version or None."""

        def go() -> str | None:
            import mlflow
            from mlflow.models import ModelSignature
            from mlflow.types import Schema, TensorSpec

            from blindsr.tracking.pyfunc import ENTRY

            spec = TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))
            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*An input example was not provided", UserWarning)  # signature given
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(ENTRY),
                    artifacts=model_format.write(tmp, model, cfg),
                    signature=ModelSignature(inputs=Schema([spec]), outputs=Schema([spec])),
                    pip_requirements=requirements(),  # stated: inferring them would load the model in a subprocess
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
        why = f" ({self.refused})" if self.refused else ""
        return f"not logged to MLflow ({self.uri}): " + "; ".join(parts) + why


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
