"""Training on a real local Ray with a real MLflow store (SQLite in a temp project folder): smoke runs of
both families on 2 CPU workers, recovery from an injected worker failure, resume by name, the
non-finite-loss stop, and an unreachable tracking server that must not stop training."""

from __future__ import annotations

import mlflow
import pytest
import ray
import torch

from blindsr.config import build_config
from blindsr.tracking import load_model
from blindsr.train.loop import NonFiniteLossError, fit

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=4, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def no_ambient_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each test's store is its own tmp folder


def client(project) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_cdsr_smoke_survives_a_worker_failure_and_registers_a_loadable_model(tmp_path):
    cfg = build_config("cdsr_smoke", overrides=["train.fail_at_step=3"])
    outcome = fit(cfg, project_dir=tmp_path)
    assert outcome.step == 4 and outcome.model_version == "1"  # failed at 3, resumed from 2, finished
    assert "all tracking calls succeeded" in outcome.tracking

    c = client(tmp_path)
    runs = c.search_runs([c.get_experiment_by_name("blindsr-cdsr").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the restart continued the same run
    history = c.get_metric_history(runs[0].info.run_id, "val/psnr_y")
    assert [m.step for m in history] == [2, 4]
    assert str(c.get_model_version_by_alias("cdsr_x2", "champion").version) == "1"
    model = load_model("models:/cdsr_x2@latest", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with torch.no_grad():
        assert model(torch.rand(1, 3, 23, 37)).shape == (1, 3, 46, 74)
    artifacts = {a.path for a in c.list_artifacts(runs[0].info.run_id)}
    assert {"config.yaml", "samples"} <= artifacts


def test_cmdsr_smoke_resumes_by_name_at_the_step_it_reached(tmp_path):
    first = fit(build_config("cmdsr_smoke", overrides=["train.steps=2"]), project_dir=tmp_path)
    assert first.step == 2
    again = fit(build_config("cmdsr_smoke", overrides=["train.steps=4"]), project_dir=tmp_path)
    assert again.step == 4 and again.run_id == first.run_id
    history = client(tmp_path).get_metric_history(first.run_id, "val/psnr_y")
    assert [m.step for m in history] == [2, 4]
    assert again.model_version == "2"  # each finished run registers a new version of cmdsr_x2


def test_non_finite_losses_stop_the_run_with_the_step_and_last_checkpoint(tmp_path):
    overrides = ["optim.lr=1e30", "train.max_nonfinite=2", "train.steps=6", "model.name=srresnet"]
    with pytest.raises(NonFiniteLossError, match=r"non-finite losses in a row up to step \d+; last good checkpoint"):
        fit(build_config("cmdsr_smoke", overrides=overrides), project_dir=tmp_path)


def test_unreachable_tracking_server_warns_and_training_finishes(tmp_path):
    overrides = ["tracking.tracking_uri=http://127.0.0.1:9", "train.steps=2"]
    outcome = fit(build_config("cmdsr_smoke", overrides=overrides), project_dir=tmp_path)
    assert outcome.step == 2
    assert "not logged to MLflow (http://127.0.0.1:9)" in outcome.tracking
    assert "metrics at 2 steps (1–2)" in outcome.tracking
