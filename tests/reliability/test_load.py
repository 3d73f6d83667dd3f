"""Load: a sweep of 4 smoke trials all running at once on this 2-core machine (Ray told it has 24 CPUs, so
nothing but the scheduler stops them), each with its TorchTrainer, train worker, degradation actor and Ray
Data read tasks, tracked over HTTP on the PostgreSQL-backed MLflow server. It must finish without deadlock or
starvation: every trial trains all its steps, the 4 nested runs overlap in time (each waits after its first step
until all four have got there, so a scheduler that ran them one after another would hang, not race), the report
is logged."""

from __future__ import annotations

import mlflow
import pytest
import ray

from blindsr.report import write_report
from blindsr.space import load_space
from blindsr.tune import run_sweep
from faults import Barrier

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPACE = """
title: "load: four concurrent trials"
family: cmdsr
base: {scaling.num_workers: 1, train.steps: 6}
rows:
  - {label: "t0 = 0", set: {optim.t0: 0}}
  - {label: "t0 = 1", set: {optim.t0: 1}}
  - {label: "t0 = 2", set: {optim.t0: 2}}
  - {label: "t0 = 3", set: {optim.t0: 3}}
evaluate: {protocol: cmdsr, degradations: [middle], sets: [Set5]}
"""


def test_four_concurrent_smoke_trials_finish(tracking_server, tmp_path, login):
    login(tracking_server.logins["trainer"])  # before ray.init: the local Ray workers inherit it
    (tmp_path / "load.yaml").write_text(SPACE)
    overrides = [f"tracking.tracking_uri={tracking_server.url}", f"train.storage_path={tmp_path / 'ray'}"]
    ray.init(address="local", num_cpus=24, include_dashboard=True)  # state API: see ensure_ray
    try:
        outcome = run_sweep(
            load_space(tmp_path / "load.yaml"), "smoke", overrides, name="load", project_dir=tmp_path,
            max_concurrent=4, hooks=[Barrier(tmp_path, parties=4)],
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert [(t["status"], t["step"]) for t in outcome.trials] == [("finished", 6)] * 4, outcome.trials

    client = mlflow.MlflowClient(tracking_server.url)
    parent = client.get_run(outcome.parent_run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    starts, ends = [c.info.start_time for c in children], [c.info.end_time for c in children]
    assert max(starts) < min(ends)  # all four were training at the same time

    write_report(outcome.folder)
    assert {"report/report.md", "report/report.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }
