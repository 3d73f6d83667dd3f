"""``ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml`` against a real two-node Ray cluster
on this machine (``ray start --head`` + ``ray start --address``, each with its own CPUs and a custom resource
label) and a real MLflow server (PostgreSQL backend) over HTTP. The degradation actors and the train workers
must run on both nodes, checkpoints land in the shared storage path, the model is registered by a training
user whose credentials reach the workers only through the job's runtime env (and appear in no param, tag,
artifact or log line), and a read-only user's registry CLI reads it back from the server."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import yaml

from blindsr.tracking.system import short_node_id
from helpers import job
from servers import RAY, ROOT, RayCluster, secret_in_run

pytestmark = [pytest.mark.ray, pytest.mark.slow]
NODE_LABELS = ("blindsr_head", "blindsr_node_b")


@pytest.fixture
def two_nodes():
    cluster = RayCluster(Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp")))
    try:
        cluster.start_head(cpus=3, resources={NODE_LABELS[0]: 1}).add_node(cpus=3, resources={NODE_LABELS[1]: 1})
        yield cluster
    finally:
        cluster.stop()


def ray_list(cluster: RayCluster, what: str) -> list[dict]:
    done = subprocess.run(
        [RAY, "list", what, f"--address={cluster.dashboard}", "--format=json", "--detail", "--limit=10000"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def actor_logs(node: Path, kind: str) -> int:
    """How many actor processes whose class name contains ``kind`` the node with temp dir ``node`` started:
    Ray writes ``:actor_name:<class>`` into each actor process's log file."""
    return sum(
        any(line.startswith(":actor_name:") and kind in line for line in f.read_text(errors="replace").splitlines())
        for f in node.glob("session_*/logs/worker-*.out")
    )


def test_job_spreads_over_two_nodes_and_registers_over_http(two_nodes, tracking_server, tmp_path, login, capsys):
    runtime_env = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    runtime_env["env_vars"]["MLFLOW_TRACKING_URI"] = tracking_server.url  # the file's, pointed at this server
    trainer = tracking_server.logins["trainer"]  # the nodes have no credentials: only the job's runtime env
    runtime_env["env_vars"].update(trainer)
    env_file = tmp_path / "runtime_env.yaml"
    env_file.write_text(yaml.safe_dump(runtime_env))
    shared = tmp_path / "shared"  # both nodes see this folder: the NFS of a real cluster
    cmd = [
        RAY, "job", "submit", f"--address={two_nodes.dashboard}", "--working-dir", ".", "--runtime-env", str(env_file),
        "--", sys.executable, "jobs/train_cmdsr.py", "--preset", "smoke", "--name", "two-nodes",
        "--set", "train.steps=8", "--set", "scaling.num_workers=2", "--set", "scaling.placement_strategy=SPREAD",
        "--set", "scaling.degrade_actors=2", "--set", f"train.storage_path={shared}",
        "--set", "tracking.system_metrics_every_s=1",
    ]  # fmt: skip
    for _ in range(10):  # the head's job agent registers a few seconds after `ray start` returns
        done = subprocess.run(cmd, cwd=ROOT, env=two_nodes.env, capture_output=True, text=True, timeout=900)
        if "No available agent to submit job" not in done.stderr:
            break
        time.sleep(2)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout and "finished at step 8" in done.stdout, done.stdout[-4000:]

    nodes = {n["node_id"]: n for n in ray_list(two_nodes, "nodes")}
    assert sorted(label for n in nodes.values() for label in n["resources_total"] if label in NODE_LABELS) == sorted(
        NODE_LABELS
    )
    # Where the actors ran, from each node's own worker logs (Ray names the actor at the top of its process's
    # log): the state API can lose the node of an actor that is already dead by the time it is asked.
    for kind in ("RayTrainWorker", "DegradeWorker"):
        ran = {temp.name: actor_logs(temp, kind) for temp in two_nodes.nodes}
        assert all(ran.values()), f"{kind} processes per node: {ran}"

    assert any((shared / "two-nodes").glob("checkpoint_*/model.safetensors"))
    line = next(x for x in done.stdout.splitlines() if x.startswith("MLflow run: "))
    run_id, version = line.removeprefix("MLflow run: ").split("; registered version: ")
    login(tracking_server.logins["reader"])  # reading the registry needs only a read-only user
    client = mlflow.MlflowClient(tracking_server.url)
    assert client.get_model_version("cmdsr_x2", version).run_id == run_id
    # the job's final evaluation went into the same run, and the job said where to look at it
    assert "eval/cmdsr/corpus/mean/psnr_y" in client.get_run(run_id).data.metrics
    assert [a.path for a in client.list_artifacts(run_id, "eval/cmdsr")] == ["eval/cmdsr/table.md"]
    # each node's CPU and memory (MLflow's system metrics), under that node's id and no other
    metrics = client.get_run(run_id).data.metrics
    labels = {short_node_id(node) for node in nodes}
    assert {k.split("/")[1] for k in metrics if k.startswith("system/")} == labels, sorted(metrics)
    total_mb = psutil.virtual_memory().total / 1e6  # both nodes run on this machine
    for label in labels:
        assert 0 <= metrics[f"system/{label}/cpu_utilization_percentage"] <= 100
        assert 0 < metrics[f"system/{label}/system_memory_usage_megabytes"] <= total_mb
    assert f"MLflow UI: {tracking_server.url}/#/experiments/" in done.stdout and run_id in done.stdout
    password = trainer["MLFLOW_TRACKING_PASSWORD"]
    assert password not in done.stdout + done.stderr  # the job's log
    model = f"models:/cmdsr_x2/{version}"
    assert secret_in_run(client, run_id, password, tmp_path / "artifacts", models=(model,)) == []
    capsys.readouterr()
    assert job("models").main(["--tracking-uri", tracking_server.url, "show", "cmdsr_x2"]) == 0
    assert f"run {run_id}" in capsys.readouterr().out
