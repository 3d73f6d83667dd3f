"""Real faults during real training runs (``fit`` on one shared local Ray, a SQLite MLflow store per test): a
SIGKILLed degradation actor, a SIGKILLed train worker, a crash on 2 workers, a half-written latest checkpoint,
non-finite losses, an unreachable tracking server. Faults that do not mask each other share a run (every run
costs Ray Train's start-up). Each fault comes at a step the test chooses
(``tests/faults.py``), never by racing a timer. Each test asserts that nothing was lost or repeated: the
exact task ids of every step, one MLflow run, metrics that continue from the resumed step."""

from __future__ import annotations

import logging

import mlflow
import pytest
import ray
import torch
from safetensors.torch import load_file

from blindsr.artifacts import checkpoint
from blindsr.config import Config, build_config
from blindsr.tracking import load_model
from blindsr.train.launch import NonFiniteLossError, deterministic, fit
from faults import KillAt, RecordTaskIds, TruncateNewestAndRaise, kill_once_worker

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


def test_sigkilled_actor_and_train_worker_lose_and_repeat_no_task(tmp_path):
    """A degradation actor SIGKILLs itself in the middle of its first batch (Ray restarts it and re-runs the
    batch; training never notices), then the train worker is SIGKILLed after step 6: the job restarts it from
    the step-4 checkpoint, the stream restarts at step 5's tasks, and the same MLflow run continues. The run
    keeps an EMA of its weights: the registered model is the EMA of the last checkpoint, not its live weights."""
    ids, kill, actor = RecordTaskIds(tmp_path), KillAt(6, tmp_path / "worker.killed"), tmp_path / "actor.killed"
    cfg = cmdsr(
        "kills", "train.steps=8", "train.checkpoint_every=4", "train.val_every=4", "scaling.degrade_actors=2",
        "train.ema_decay=0.5",
    )  # fmt: skip
    outcome = fit(cfg, tmp_path, hooks=[ids, kill], worker_cls=kill_once_worker(actor))
    assert actor.exists() and kill.marker.exists()  # both faults happened
    assert outcome.step == 8 and outcome.resumed == 4 and outcome.model_version == "1"

    records, k = ids.read(), cfg.data.tasks_per_step
    assert [(r["start"], r["step"]) for r in records] == [(0, s) for s in range(1, 7)] + [(4, s) for s in range(5, 9)]
    assert [r["ids"] for r in records[:6]] == [i for _, i in canonical(6, k)]  # the actor's batch was re-run
    assert records[6]["ids"] == canonical(8, k)[4][1]  # the first batch after the restart is step 5's
    final = {r["step"]: r["ids"] for r in records}  # the restarted attempt retrained steps 5 and 6
    assert sorted(final.items()) == canonical(8, k)  # the same task ids as a run without a restart

    client, run = one_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["val/psnr_y"] > 0
    history = client.get_metric_history(run.info.run_id, "train/loss_l1")
    after = [m.step for m in history if m.timestamp > kill.killed_at() * 1000]
    assert min(after) == 5 and max(after) == 8  # logging continued from the checkpoint
    assert {m.step for m in history} == set(range(1, 9))  # and no step is missing
    assert str(client.get_model_version_by_alias("cmdsr_x2", "champion").version) == "1"
    last = max(p for p in (tmp_path / "outputs" / "ray" / cfg.name).glob("checkpoint_*") if p.is_dir())
    assert checkpoint.read(last).meta["step"] == 8 and checkpoint.read(last).trainer["ema_updates"] == 8
    registered = load_model("models:/cmdsr_x2/1", f"sqlite:///{tmp_path / 'mlflow.db'}").state_dict()
    ema, live = load_file(str(last / checkpoint.EMA_FILE)), load_file(str(last / checkpoint.MODEL_FILE))
    assert all(torch.equal(registered[k], ema[k]) for k in ema) and registered.keys() == ema.keys()
    assert not all(torch.equal(live[k], ema[k]) for k in ema)


def test_crash_on_two_workers_with_a_cut_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    """CDSR on 2 train workers (one MoCo queue across ranks): at step 5 the newest checkpoint (step 4) is cut in
    half and the workers crash; the restart warns about the cut file and resumes from step 2 in the same run."""
    cfg = build_config("cdsr_smoke", overrides=["train.steps=6"])  # validation and checkpoints every 2
    crash = TruncateNewestAndRaise(5, tmp_path / "outputs" / "ray" / cfg.name)
    with caplog.at_level(logging.WARNING, logger="blindsr"):
        outcome = fit(cfg, tmp_path, hooks=[crash])
    assert outcome.step == 6 and outcome.resumed == 2 and outcome.model_version == "1"
    assert any("unreadable checkpoint" in r.message and "model.safetensors" in r.message for r in caplog.records)
    assert "all tracking calls succeeded" in outcome.tracking
    c, run = one_run(tmp_path, "blindsr-cdsr")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in c.get_metric_history(run.info.run_id, "val/psnr_y")]
    assert steps == [2, 4, 4, 6]  # step 4 was trained again, from step 2's weights
    assert str(c.get_model_version_by_alias("cdsr_x2", "champion").version) == "1"
    model = load_model("models:/cdsr_x2@latest", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with torch.no_grad():
        assert model(torch.rand(1, 3, 23, 37)).shape == (1, 3, 46, 74)
    assert {"config.yaml", "samples"} <= {a.path for a in c.list_artifacts(run.info.run_id)}


def test_non_finite_losses_stop_the_run_and_an_unreachable_server_does_not(tmp_path):
    """Non-finite losses stop the run with the step and last checkpoint; tracking to a server that never
    answers only warns, and the outcome still says what was not logged."""
    overrides = ["optim.lr=1e30", "train.max_nonfinite=2", "train.steps=6", "model.name=srresnet"]
    cfg = cmdsr("nan", *overrides, "tracking.tracking_uri=http://127.0.0.1:9")
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite losses in a row up to step \d+; last good checkpoint"
    ) as e:
        fit(cfg, tmp_path)
    logged = e.value.outcome.step - 1  # the step that stopped the run is not logged
    assert logged >= 2 and "not logged to MLflow (http://127.0.0.1:9)" in e.value.outcome.tracking
    assert f"metrics at {logged} steps (1–{logged})" in e.value.outcome.tracking


def test_a_worker_error_that_a_restart_would_repeat_is_not_retried():
    """fit() restarts a run for a crash (RuntimeError, a killed worker) but not for a ValueError or TypeError a
    worker raised: those come from the config or the code and would repeat (fit raises WorkerError at once)."""
    from ray.train.v2.api.exceptions import WorkerGroupError

    class Wrapped(Exception):  # as Ray hands a worker's exception over: the original as ``cause``
        def __init__(self, cause: BaseException) -> None:
            self.cause = cause

    value = ValueError("CMDSR needs 2n patches")
    assert deterministic(WorkerGroupError("x", {0: RuntimeError("crash"), 1: Wrapped(value)})) is value
    assert deterministic(WorkerGroupError("x", {0: TypeError("bad")})).args == ("bad",)
    assert deterministic(WorkerGroupError("x", {0: RuntimeError("crash"), 1: Wrapped(OSError("gone"))})) is None
    assert deterministic(RuntimeError("a controller error")) is None
