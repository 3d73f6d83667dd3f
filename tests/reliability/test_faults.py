"""Real faults during real training runs (``fit`` on one shared local Ray, a SQLite MLflow store per test): a
SIGKILLed degradation actor, a SIGKILLed train worker, a crash on 2 workers, a corrupted latest checkpoint,
non-finite losses, an unreachable tracking server. Each fault comes at a step the test chooses
(``tests/faults.py``), never by racing a timer. Each test asserts that nothing was lost or repeated: the
exact task ids of every step, one MLflow run, metrics that continue from the resumed step."""

from __future__ import annotations

import logging

import mlflow
import pytest
import ray
import torch

from blindsr.config import Config, build_config
from blindsr.tracking import load_model
from blindsr.train.checkpoint import read_meta
from blindsr.train.launch import NonFiniteLossError, fit
from faults import KillAt, RaiseAt, RecordTaskIds, kill_once_worker

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=4, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def no_ambient_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each test's store is its own tmp folder


def cmdsr(name: str, *overrides: str) -> Config:
    """The CMDSR smoke run on one train worker (one consumer: its task-id order is exact)."""
    cfg = build_config("cmdsr_smoke", overrides=["scaling.num_workers=1", "train.log_every=1", *overrides])
    cfg.name = name
    return cfg


def canonical(steps: int, k: int) -> list[tuple[int, list[int]]]:
    """What one consumer must train on: step s holds task ids (s-1)·k … s·k-1."""
    return [(s, list(range((s - 1) * k, s * k))) for s in range(1, steps + 1)]


def one_run(project, experiment: str = "blindsr-cmdsr"):
    c = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]  # a restart continues its run, never duplicates it
    return c, runs[0]


def test_sigkilled_degradation_actor_is_restarted_and_no_task_is_lost_or_reordered(tmp_path):
    ids, marker = RecordTaskIds(tmp_path), tmp_path / "actor.killed"
    cfg = cmdsr("actor-kill", "train.steps=8", "scaling.degrade_actors=2")
    outcome = fit(cfg, tmp_path, hooks=[ids], worker_cls=kill_once_worker(marker))
    assert marker.exists()  # an actor died in the middle of its first batch, with the stream still running
    assert outcome.step == 8 and outcome.resumed == 0  # the training run itself never restarted
    assert [(r["step"], r["ids"]) for r in ids.read()] == canonical(8, cfg.data.task_size)  # Ray re-ran the batch
    _, run = one_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["val/psnr_y"] > 0


def test_sigkilled_train_worker_resumes_exactly_where_its_checkpoint_left_the_stream(tmp_path):
    ids, kill = RecordTaskIds(tmp_path), KillAt(6, tmp_path / "worker.killed")
    cfg = cmdsr("worker-kill", "train.steps=8", "train.checkpoint_every=4", "train.val_every=4")
    outcome = fit(cfg, tmp_path, hooks=[ids, kill])
    assert outcome.step == 8 and outcome.resumed == 4 and outcome.model_version == "1"

    records, k = ids.read(), cfg.data.task_size
    assert [(r["start"], r["step"]) for r in records] == [(0, s) for s in range(1, 7)] + [(4, s) for s in range(5, 9)]
    assert records[6]["ids"] == canonical(8, k)[4][1]  # the first batch after the restart is step 5's
    final = {r["step"]: r["ids"] for r in records}  # the restarted attempt retrained steps 5 and 6
    assert sorted(final.items()) == canonical(8, k)  # the same task ids as a run without a restart

    client, run = one_run(tmp_path)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss_l1")
    after = [m.step for m in history if m.timestamp > kill.killed_at() * 1000]
    assert min(after) == 5 and max(after) == 8  # logging continued from the checkpoint
    assert {m.step for m in history} == set(range(1, 9))  # and no step is missing
    assert str(client.get_model_version_by_alias("cmdsr_x2", "champion").version) == "1"

    again = fit(cmdsr("worker-kill", "train.steps=12", "train.checkpoint_every=4", "train.val_every=4"), tmp_path)
    assert again.step == 12 and again.resumed == 8 and again.run_id == run.info.run_id  # resumed by name
    assert again.model_version == "2"  # each finished run registers a new version of cmdsr_x2
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr_y")] == [4, 8, 12]


def test_crash_on_two_workers_restarts_and_a_corrupted_checkpoint_falls_back(tmp_path, caplog):
    """CDSR on 2 train workers (one MoCo queue across ranks): a crash at step 3 resumes from step 2 in the same
    run; then the newest checkpoint is truncated and a longer run falls back to the one before it."""
    cfg = build_config("cdsr_smoke")  # 4 steps, validation and checkpoints every 2
    outcome = fit(cfg, tmp_path, hooks=[RaiseAt(3)])
    assert outcome.step == 4 and outcome.resumed == 2 and outcome.model_version == "1"
    assert "all tracking calls succeeded" in outcome.tracking
    c, run = one_run(tmp_path, "blindsr-cdsr")
    assert run.info.status == "FINISHED"
    assert [m.step for m in c.get_metric_history(run.info.run_id, "val/psnr_y")] == [2, 4]
    assert str(c.get_model_version_by_alias("cdsr_x2", "champion").version) == "1"
    model = load_model("models:/cdsr_x2@latest", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with torch.no_grad():
        assert model(torch.rand(1, 3, 23, 37)).shape == (1, 3, 46, 74)
    assert {"config.yaml", "samples"} <= {a.path for a in c.list_artifacts(run.info.run_id)}

    newest = next(
        p.parent
        for p in (tmp_path / "outputs" / "ray" / cfg.name).glob("*/state.json")
        if read_meta(p.parent)["step"] == 4
    )
    model_file = newest / "model.pt"
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])  # a half-written file
    with caplog.at_level(logging.WARNING, logger="blindsr"):
        again = fit(build_config("cdsr_smoke", overrides=["train.steps=6"]), tmp_path)
    assert again.step == 6 and again.resumed == 2
    assert any("unreadable checkpoint" in r.message and "model.pt" in r.message for r in caplog.records)
    steps = [m.step for m in c.get_metric_history(run.info.run_id, "val/psnr_y")]
    assert steps.count(4) == 2 and steps[-1] == 6  # step 4 was trained again, from step 2's weights


def test_non_finite_losses_stop_the_run_with_the_step_and_last_checkpoint(tmp_path):
    cfg = cmdsr("nan", "optim.lr=1e30", "train.max_nonfinite=2", "train.steps=6", "model.name=srresnet")
    with pytest.raises(NonFiniteLossError, match=r"non-finite losses in a row up to step \d+; last good checkpoint"):
        fit(cfg, tmp_path)
    _, run = one_run(tmp_path, "blindsr-srresnet")
    assert run.info.status == "FAILED"


def test_unreachable_tracking_server_warns_and_training_finishes(tmp_path):
    cfg = cmdsr("offline", "tracking.tracking_uri=http://127.0.0.1:9", "train.steps=2")
    outcome = fit(cfg, tmp_path)
    assert outcome.step == 2
    assert "not logged to MLflow (http://127.0.0.1:9)" in outcome.tracking
    assert "metrics at 2 steps (1–2)" in outcome.tracking
