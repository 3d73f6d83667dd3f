"""A real MLflow tracking server (``mlflow server``, PostgreSQL backend, served artifacts) that goes away in
the middle of a training run, at a step the test chooses: training finishes, warns once and says what was not
logged; a server that is back gets the rest and the run's end; after a restart the registry is intact."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import ray

from blindsr.config import Config, build_config
from blindsr.tracking import Tracker
from blindsr.train.launch import fit
from faults import Gate, PauseAt
from helpers import job
from servers import MlflowServer

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


def smoke(name: str, url: str, *overrides: str) -> Config:
    """CMDSR smoke on one worker, every step logged, a failed server retried at the very next call."""
    every = ["train.log_every=1", "train.val_every=4", "train.checkpoint_every=4", "tracking.retry_every_s=0"]
    cfg = build_config(
        "cmdsr_smoke", overrides=["scaling.num_workers=1", f"tracking.tracking_uri={url}", *every, *overrides]
    )
    cfg.name = name
    return cfg


def models_list(url: str, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """The rows of ``jobs/models.py list``: model, version, aliases, val psnr_y, created, run."""
    capsys.readouterr()
    rc = job("models").main(["--tracking-uri", url, "list"])
    out, err = capsys.readouterr()
    assert rc == 0, out[-2000:] + err[-2000:]
    lines = [line for line in out.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def worker_warnings(text: str) -> int:
    """How often the Ray workers of this session logged ``text`` (their log files, not the racy console copy)."""
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    return sum(f.read_text(errors="replace").count(text) for f in logs.glob("worker-*.err"))


def operate(steps: list[tuple[Gate, Callable[[], object]]]) -> threading.Thread:
    """In the background: at each gate the job reaches, do the action (stop or start the server), then open it."""

    def run() -> None:
        for gate, action in steps:
            gate.wait_arrived()
            action()
            gate.open()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_server_outage_during_and_at_the_end_of_a_run(postgres_database, tmp_path, monkeypatch, capsys):
    """The server stops after step 2 and is back after step 5 (gates, not timers): training goes on, logging
    resumes, the run ends FINISHED with what was lost named. Resumed by name to 12 steps, the run loses the
    server for good after step 10: it finishes, says what was not logged, and the registry is what it was."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # a refused connection fails at once, no back-off (the Ray workers started below inherit it)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = MlflowServer(postgres_database("outage"), tmp_path / "artifacts", workers=1).start()
    ray.init(address="local", num_cpus=4, include_dashboard=False)
    try:
        client = mlflow.MlflowClient(server.url)
        down, back = Gate(tmp_path, "down"), Gate(tmp_path, "back")
        operator = operate([(down, server.stop), (back, server.start)])
        outcome = fit(
            smoke("outage", server.url, "train.steps=8"), tmp_path, hooks=[PauseAt(2, down), PauseAt(5, back)]
        )
        operator.join()
        assert outcome.step == 8 and outcome.model_version == "1"  # registered once the server was back
        assert (
            outcome.tracking
            == f"not logged to MLflow ({server.url}): metrics at 3 steps (3–5); sample images at step 4"
        )
        run = client.get_run(outcome.run_id)
        assert run.info.status == "FINISHED"  # closed by the end of training, the server being back
        logged = {m.step for m in client.get_metric_history(run.info.run_id, "train/loss_l1")}
        assert logged == {1, 2, 6, 7, 8}  # logging resumed at the first step after the server came back
        assert worker_warnings(f"MLflow tracking at {server.url} failed") == 1  # warned once

        before = models_list(server.url, capsys)
        gone = Gate(tmp_path, "gone")
        operator = operate([(gone, server.stop)])
        lost = fit(smoke("outage", server.url, "train.steps=12"), tmp_path, hooks=[PauseAt(10, gone)])
        operator.join()
    finally:
        server.stop()
        ray.shutdown()

    assert lost.step == 12 and lost.resumed == 8 and lost.run_id == outcome.run_id  # resumed by name, same run
    assert lost.model_version is None
    assert lost.tracking.startswith(f"not logged to MLflow ({server.url}): metrics at 2 steps (11–12)"), lost.tracking
    assert "model and registry" in lost.tracking and "run end" in lost.tracking, lost.tracking
    server.start()  # the same database behind a new server process
    try:
        after = models_list(server.url, capsys)
        history = [m.step for m in client.get_metric_history(outcome.run_id, "val/psnr_y")]
    finally:
        server.stop()
    assert after == before  # version 1 and its aliases intact, no half-registered version from the outage
    assert [row[:3] for row in after] == [["cmdsr_x2", "1", "champion"]]
    assert history == [8]  # step 4's validation fell in the outage, steps 9–12 logged none before it
