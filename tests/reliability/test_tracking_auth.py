"""An authenticated tracking server (MLflow's basic-auth app, as cluster/mlflow/docker-compose.yaml runs it):
the session's real PostgreSQL-backed server with a training user and a read-only user made by
``jobs/mlflow_users.py``. A training user logs and registers; the password is in no param, tag or artifact;
a read-only user loads ``@champion`` but cannot move it; no or wrong credentials are refused with an error that
says "not authorised" and names the variables to set, and training still goes on (one warning, a summary)."""

from __future__ import annotations

import logging
import subprocess
import sys

import mlflow
import pytest
import torch

from blindsr.config import Config, ModelConfig
from blindsr.models import build_model
from blindsr.tracking import RegistryError, Tracker, load_model, log_evaluation, reachable
from helpers import job
from servers import ROOT, secret_in_run

pytestmark = [pytest.mark.slow]
VARS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


def run_job(name: str, *argv: str) -> int:
    return job(name).main(list(argv))


def tracked(uri: str, run: str, registered: str | None = None, val: float | None = None) -> Tracker:
    """A Tracker that starts ``run``, logs 3 steps of metrics and (with ``registered``) a tiny model."""
    tracker = Tracker(uri, retry_after=0)
    tracker.start("blindsr-auth", run, {"model.name": "srresnet", "optim.lr": 1e-4})
    for step in (1, 2, 3):
        tracker.metrics({"train/loss": 1.0 / step}, step)
    if registered:
        torch.manual_seed(0)
        cfg = Config(scale=2, model=ModelConfig(name="srresnet", n_feats=8, n_blocks=1))
        tracker.log_model(build_model(cfg.model, cfg.scale), cfg, registered, val)
    tracker.end()
    return tracker


@pytest.fixture(scope="module")
def champion(tracking_server, tmp_path_factory) -> str:
    """``auth_x2`` version 1, champion, registered by the training user (its run id is returned)."""
    with pytest.MonkeyPatch.context() as mp:
        for var, value in tracking_server.logins["trainer"].items():
            mp.setenv(var, value)
        tracker = tracked(tracking_server.url, "trained", "auth_x2", 30.0)
        assert tracker.summary() == "all tracking calls succeeded"
        return tracker.run_id


def test_a_training_user_registers_and_its_password_is_logged_nowhere(tracking_server, champion, login, tmp_path):
    login(tracking_server.logins["trainer"])
    client = mlflow.MlflowClient(tracking_server.url)
    assert client.get_model_version_by_alias("auth_x2", "champion").run_id == champion
    password = tracking_server.logins["trainer"]["MLFLOW_TRACKING_PASSWORD"]
    assert secret_in_run(client, champion, password, tmp_path, models=("models:/auth_x2/1",)) == []
    assert run_job("mlflow_users", "--tracking-uri", tracking_server.url, "grant", "trainer") == 2  # admins only


def test_a_read_only_user_loads_the_champion_but_cannot_move_it(tracking_server, champion, login, capsys, caplog):
    login(tracking_server.logins["reader"])
    model = load_model("models:/auth_x2@champion", tracking_server.url)
    torch.manual_seed(0)
    same = build_model(ModelConfig(name="srresnet", n_feats=8, n_blocks=1), 2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True))
    assert run_job("models", "--tracking-uri", tracking_server.url, "list") == 0
    assert "| auth_x2 | 1 | champion |" in capsys.readouterr().out

    assert run_job("models", "--tracking-uri", tracking_server.url, "promote", "auth_x2", "1", "staging") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot set auth_x2@staging -> 1: not authorised") and "HTTP 403" in err, err
    assert "staging" not in mlflow.MlflowClient(tracking_server.url).get_registered_model("auth_x2").aliases

    with caplog.at_level(logging.WARNING, logger="blindsr"):
        tracker = tracked(tracking_server.url, "reader-run", "auth_x2", 99.0)  # would beat the champion
    assert [r.levelno for r in caplog.records if "MLflow tracking" in r.getMessage()] == [logging.WARNING]
    assert "not authorised" in tracker.summary() and "HTTP 403" in tracker.summary()
    assert mlflow.MlflowClient(tracking_server.url).get_model_version_by_alias("auth_x2", "champion").version == "1"


@pytest.mark.parametrize("who", ["nobody", "wrong password"])
def test_missing_or_wrong_credentials_name_the_variables(tracking_server, champion, who, login, capsys, caplog):
    login({} if who == "nobody" else {**tracking_server.logins["trainer"], "MLFLOW_TRACKING_PASSWORD": "not-it"})
    expected = "no credentials" if who == "nobody" else "the credentials of user 'trainer' were rejected"
    reason = reachable(tracking_server.url)
    assert reason.startswith("not authorised") and "HTTP 401" in reason and expected in reason and VARS in reason
    assert "unreachable" not in reason

    with caplog.at_level(logging.WARNING, logger="blindsr"):
        tracker = tracked(tracking_server.url, f"refused-{who}", "auth_x2", 99.0)  # training would go on
    warnings = [r.getMessage() for r in caplog.records if "MLflow tracking" in r.getMessage()]
    assert len(warnings) == 1 and "not authorised" in warnings[0] and "unreachable" not in warnings[0], warnings
    summary = tracker.summary()
    assert summary.startswith(f"not logged to MLflow ({tracking_server.url}): start; run start and params; metrics")
    assert "model and registry" in summary and VARS in summary

    with pytest.raises(RegistryError, match=f"not authorised.*{VARS}"):
        log_evaluation(tracking_server.url, champion, "eval", {"eval/psnr": 1.0}, [], "eval")
    assert run_job("models", "--tracking-uri", tracking_server.url, "show", "auth_x2") == 2
    assert f"not authorised by MLflow server {tracking_server.url} (HTTP 401" in capsys.readouterr().err


def test_a_password_in_the_tracking_uri_is_refused_before_anything_runs(tracking_server):
    url = tracking_server.url.replace("http://", "http://trainer:secret@")
    done = subprocess.run(
        [sys.executable, "jobs/train_cmdsr.py", "--preset", "smoke", "--set", f"tracking.tracking_uri={url}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "tracking.tracking_uri in --set: must not contain a password" in done.stderr
    assert "Started a local Ray instance" not in done.stdout + done.stderr
