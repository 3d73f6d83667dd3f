"""Credentials for an authenticated MLflow server (``mlflow server --app-name basic-auth``) and its users.

Clients read MLflow's own variables (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` or ``_TOKEN``) from the
environment, never from a config, so they never reach a param, tag, log line or artifact. HTTP 401/403 read "not
authorised" and name what to set, never "unreachable". Users (``jobs/mlflow_users.py``): ``train`` users write the
``blindsr`` experiments and registered models; ``read`` users get READ (load ``models:/…@champion``, nothing more)."""

from __future__ import annotations

import base64
import os

from blindsr.errors import InputError

USER, PASSWORD, TOKEN = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
HOW = f"set {USER} and {PASSWORD} (or {TOKEN}) in the environment of the job and of every Ray node"
ROLES = ("train", "read")


def auth_header() -> dict[str, str]:
    """The ``Authorization`` header MLflow's client would send with this environment's credentials, or {}."""
    if token := os.environ.get(TOKEN):
        return {"Authorization": f"Bearer {token}"}
    if os.environ.get(USER) and os.environ.get(PASSWORD):
        pair = f"{os.environ[USER]}:{os.environ[PASSWORD]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


def not_authorised(uri: str, status: int) -> str:
    """The one-line reason for a 401 or 403 from ``uri``."""
    if status == 401:
        who = (
            f"the credentials of user {os.environ[USER]!r} were rejected" if os.environ.get(USER) else "no credentials"
        )
        return f"not authorised by MLflow server {uri} (HTTP 401: {who}); {HOW}"
    user = os.environ.get(USER) or "this token's user"
    return (
        f"not authorised by MLflow server {uri} (HTTP 403: {user!r} lacks permission for this; a read-only user "
        "cannot log, register or move an alias: use a training user, see jobs/mlflow_users.py)"
    )


def refusal(error: BaseException, uri: str) -> str | None:
    """``not_authorised(...)`` when ``error`` (an MLflow client error) is the server's 401 or 403, else None."""
    code = getattr(error, "error_code", None)
    text = str(error)
    status = getattr(getattr(error, "response", None), "status_code", None)
    if code == "UNAUTHENTICATED" or status == 401 or "error code 401" in text:
        return not_authorised(uri, 401)
    if code == "PERMISSION_DENIED" or status == 403 or "error code 403" in text:
        return not_authorised(uri, 403)
    return None


# ---- users (admin only) -------------------------------------------------------------------------------------


def add_user(uri: str, name: str, password: str, role: str) -> list[str]:
    """Create user ``name`` on the server at ``uri`` (this environment's credentials must be an admin's) with
    ``role`` ``train`` or ``read``; returns what it granted. An existing user gets a new password."""
    if role not in ROLES:
        raise InputError(f"role must be one of {ROLES}, not {role!r}")
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    admin = get_app_client("basic-auth", tracking_uri=uri)
    try:
        admin.create_user(name, password)
    except MlflowException as e:
        if getattr(e, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
            raise
        admin.update_user_password(name, password)
    return grant_training(uri, name) if role == "train" else []


def grant_training(uri: str, name: str) -> list[str]:
    """EDIT for ``name`` on every ``blindsr*`` experiment and every registered model at ``uri`` (re-run after
    someone else creates one; what ``name`` creates it manages already). Returns what was granted."""
    import mlflow
    from mlflow.server import get_app_client

    admin, client = get_app_client("basic-auth", tracking_uri=uri), mlflow.MlflowClient(uri)
    granted = []
    for exp in client.search_experiments(filter_string="name LIKE 'blindsr%'"):
        admin.grant_user_permission(name, "experiment", exp.experiment_id, "EDIT")
        granted.append(f"experiment {exp.name}")
    for model in client.search_registered_models():
        admin.grant_user_permission(name, "registered_model", model.name, "EDIT")
        granted.append(f"registered model {model.name}")
    return granted
