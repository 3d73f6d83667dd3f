"""Real faults during real training jobs (``jobs/train_cmdsr.py`` on its own local Ray, SQLite MLflow store):
a SIGKILLed degradation actor, a SIGKILLed train worker, a corrupted latest checkpoint. Each asserts that
nothing was lost: the exact step count, one MLflow run, metrics that continue from the resumed step."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import mlflow
import pytest

from blindsr.train.checkpoint import read_meta
from servers import find, finish, smoke_job, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STEPS = 24


def checkpoints(tmp_path: Path, name: str) -> list[Path]:
    return sorted((tmp_path / "ray" / name).glob("checkpoint_*/state.json"))


def one_run(tmp_path: Path, name: str):
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = c.search_runs(
        [c.get_experiment_by_name("blindsr-cmdsr").experiment_id], f"tags.`blindsr.run_name` = '{name}'"
    )
    assert len(runs) == 1, [r.info.run_id for r in runs]  # a restart continues its run, never duplicates it
    return c, runs[0]


def kill(pattern: str, proc) -> int:
    """SIGKILL one process of ``proc``'s Ray runtime whose title contains ``pattern``; return its pid."""
    pids = wait_for(lambda: find(pattern, under={proc.pid}), 60, f"a {pattern} process", proc)
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def test_sigkilled_degradation_actor_is_restarted_and_no_step_is_lost(tmp_path):
    steps = 120  # a stream long enough that the actor still has batches to make when it is killed
    every = ("--set", "train.checkpoint_every=40", "--set", "train.val_every=40")
    proc, log = smoke_job(tmp_path, "actor-kill", steps, *every)
    wait_for(lambda: find("RayTrainWorker", under={proc.pid}), 300, "the train workers", proc, log)
    first = kill("DegradeWorker", proc)
    # Ray restarts the actor in a new process and re-runs its unfinished batches
    wait_for(lambda: set(find("DegradeWorker", under={proc.pid})) - {first}, 120, "the restarted actor", proc, log)
    text = finish(proc, log)
    assert f"finished at step {steps}" in text and "resumed" not in text  # the training run never restarted
    _, run = one_run(tmp_path, "actor-kill")
    assert run.info.status == "FINISHED" and run.data.metrics["val/psnr_y"] > 0


def test_sigkilled_train_worker_resumes_from_its_checkpoint_in_the_same_run(tmp_path):
    proc, log = smoke_job(tmp_path, "worker-kill", STEPS, "--set", "train.log_every=1")
    wait_for(lambda: checkpoints(tmp_path, "worker-kill"), 300, "the first checkpoint", proc, log)
    kill("RayTrainWorker", proc)
    killed_at = time.time() * 1000
    text = finish(proc, log)
    resumed = re.search(rf"finished at step {STEPS}: .*, resumed from step (\d+)", text)
    assert resumed, text[-5000:]
    resumed_from = int(resumed.group(1))
    assert resumed_from > 0 and resumed_from % 4 == 0

    client, run = one_run(tmp_path, "worker-kill")
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss_l1")
    after = [m.step for m in history if m.timestamp > killed_at]
    assert min(after) == resumed_from + 1 and max(after) == STEPS  # logging continued from the checkpoint
    assert {m.step for m in history} == set(range(1, STEPS + 1))  # and no step is missing
    assert str(client.get_model_version_by_alias("cmdsr_x2", "champion").version) == "1"


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    text = finish(*smoke_job(tmp_path, "corrupt", 8))
    assert "finished at step 8" in text
    by_step = {read_meta(p.parent)["step"]: p.parent for p in checkpoints(tmp_path, "corrupt")}
    assert set(by_step) >= {4, 8}
    model = by_step[8] / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a half-written file

    text = finish(*smoke_job(tmp_path, "corrupt", 12))
    assert "finished at step 12: " in text and "resumed from step 4" in text, text[-5000:]
    assert re.search(r"WARNING .*unreadable checkpoint.*checkpoint_[^ ]*/model\.pt", text), text[-5000:]
    client, run = one_run(tmp_path, "corrupt")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr_y")]
    assert steps.count(8) == 2 and steps[-1] == 12  # step 8 was trained again, from step 4's weights
