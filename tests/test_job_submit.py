"""``ray job submit --working-dir .`` against a real head node started here (``ray start --head``): the job
trains the CMDSR smoke preset on the cluster and its model lands in the MLflow registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head_node(tmp_path):
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    start = [
        RAY,
        "start",
        "--head",
        "--num-cpus=4",
        f"--port={free_port()}",
        "--include-dashboard=true",
        f"--dashboard-port={dashboard}",
        "--dashboard-host=127.0.0.1",
        "--disable-usage-stats",
    ]
    started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_job_submit_trains_and_registers(head_node, tmp_path):
    address, env = head_node
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": store}}
    cmd = [
        RAY, "job", "submit", f"--address={address}", "--working-dir", ".",
        f"--runtime-env-json={json.dumps(runtime_env)}", "--",
        sys.executable, "jobs/train_cmdsr.py", "--preset", "smoke", "--name", "submitted",
        "--set", "train.steps=2", "--set", f"train.storage_path={tmp_path / 'ray'}",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout, done.stdout[-3000:]
    assert "finished at step 2" in done.stdout
    version = mlflow.MlflowClient(store).get_model_version_by_alias("cmdsr_x2", "champion")
    assert str(version.version) == "1"
    assert (tmp_path / "ray" / "submitted").is_dir()
