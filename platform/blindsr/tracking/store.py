"""Where tracking goes: the store URI, whether it answers (and lets us in), and the names runs and models get."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from blindsr.config import ConfigError
from blindsr.tracking.auth import HOW, auth_header, not_authorised

RUN_NAME_TAG = "blindsr.run_name"
VAL_METRIC_TAG = "val_psnr_y"


def resolve_uri(configured: str | None, project_dir: str | Path | None = None) -> str:
    """``tracking.tracking_uri`` if set, else ``$MLFLOW_TRACKING_URI`` (refused with a password in it: the config
    is logged), else an absolute ``sqlite:///<project>/mlflow.db`` (MLflow 3 refuses a plain ``./mlruns``)."""
    if configured:
        return configured
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        if urlsplit(uri).password is not None:  # it would be logged with the config
            raise ConfigError(f"$MLFLOW_TRACKING_URI must not contain a password; {HOW}")
        return uri
    return f"sqlite:///{Path(project_dir or Path.cwd()).resolve() / 'mlflow.db'}"


def reachable(uri: str, timeout: float = 5.0) -> str | None:
    """None when ``uri`` can be used, else a one-line reason. An HTTP server is probed twice: ``/health``
    (open to all: is it up?) and one read with this process's credentials (does it let us in?), so a server
    that refuses us is reported as not authorised, never as unreachable. SQLite stores are checked on disk."""
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        try:
            with urllib.request.urlopen(base + "/health", timeout=timeout) as r:
                if r.status != 200:
                    return f"{uri} answered HTTP {r.status}"
        except urllib.error.HTTPError as e:
            return f"{uri} answered HTTP {e.code}"
        except OSError as e:
            return f"MLflow server {uri} is unreachable ({e})"
        probe = urllib.request.Request(
            base + "/api/2.0/mlflow/experiments/search?max_results=1", headers=auth_header()
        )  # fmt: skip
        try:
            with urllib.request.urlopen(probe, timeout=timeout):
                return None
        except urllib.error.HTTPError as e:
            return not_authorised(uri, e.code) if e.code in (401, 403) else None  # other answers: the server is up
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
