"""A real MLflow tracking server (``mlflow server``, PostgreSQL backend, served artifacts) that goes away in
the middle of a training job: training finishes, warns once and says what was not logged; after a restart
the registry is what it was before the outage."""

from __future__ import annotations

import subprocess
import sys
import time

import mlflow
import pytest

from blindsr.tracking import Tracker
from servers import ROOT, MlflowServer, finish, smoke_job, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tracker_summary_condenses_what_was_not_logged():
    tracker = Tracker("http://127.0.0.1:9")  # nothing listens there: the start already fails
    tracker.start("exp", "run", {})
    for step in (1, 2, 3):
        tracker.metrics({"loss": 1.0}, step=step)
    tracker.image(None, "samples/step_2.png", step=2)
    tracker.end()
    assert tracker.summary() == (
        "not logged to MLflow (http://127.0.0.1:9): start; run start and params; metrics at 3 steps (1–3); "
        "sample images at step 2; run end"
    )


def test_tracker_starts_late_when_the_store_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "restored-after-the-test")
    store = tmp_path / "later" / "mlflow.db"
    store.parent.write_text("a file where the store's folder should be: every call fails")
    tracker = Tracker(f"sqlite:///{store}", retry_after=0.2)
    tracker.start("exp", "late", {"a": 1})
    tracker.metrics({"loss": 1.0}, step=1)  # within the pause: skipped untried
    store.parent.unlink()
    store.parent.mkdir()
    time.sleep(0.3)
    tracker.metrics({"loss": 0.5}, step=2)  # the pause is over: the run opens and this is logged
    tracker.end()
    assert tracker.run_id is not None
    assert tracker.summary() == f"not logged to MLflow (sqlite:///{store}): metrics at step 1"
    run = mlflow.MlflowClient(f"sqlite:///{store}").get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"a": "1"} and run.data.metrics == {"loss": 0.5}


def models_list(url: str) -> list[list[str]]:
    """The rows of ``jobs/models.py list``: model, version, aliases, val psnr_y, created, run."""
    done = subprocess.run(
        [sys.executable, "jobs/models.py", "--tracking-uri", url, "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_server_stopped_mid_run(postgres_database, tmp_path):
    server = MlflowServer(postgres_database("outage"), tmp_path / "artifacts").start()
    try:
        finish(*smoke_job(tmp_path, "before", 4, tracking=server.url))  # registers cmdsr_x2 version 1
        before = models_list(server.url)

        proc, log = smoke_job(tmp_path, "outage", 40, "--set", "train.log_every=1", tracking=server.url)
        client = mlflow.MlflowClient(server.url)
        experiment = client.get_experiment_by_name("blindsr-cmdsr").experiment_id

        def logging_steps():
            runs = client.search_runs([experiment], "tags.`blindsr.run_name` = 'outage'")
            return runs and client.get_metric_history(runs[0].info.run_id, "train/loss_l1")

        logged = wait_for(logging_steps, 300, "the first logged steps", proc, log)
        server.stop()
        text = finish(proc, log)
    finally:
        server.stop()

    assert "finished at step 40" in text
    assert text.count(f"MLflow tracking at {server.url} failed") == 1, text[-5000:]  # warned once
    summary = next(line for line in text.splitlines() if line.startswith("tracking: "))
    assert summary.startswith(f"tracking: not logged to MLflow ({server.url}): metrics at "), summary
    first_lost = max(m.step for m in logged) + 1
    assert "–40)" in summary and "model and registry" in summary and "run end" in summary, summary
    assert int(summary.split("steps (")[1].split("–")[0]) >= first_lost

    server.start()  # the same database behind a new server process
    after = models_list(server.url)
    assert after == before  # version 1 and its aliases intact, no half-registered version from the outage
    assert [row[:3] for row in after] == [["cmdsr_x2", "1", "champion"]]
    run = client.search_runs([experiment], "tags.`blindsr.run_name` = 'outage'")[0]
    assert run.info.status == "RUNNING"  # its end was never logged, as the summary said
    server.stop()
