"""jobs/models.py against a real temporary SQLite MLflow store: list, show, promote, compare, bad inputs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from blindsr.config import Config, ModelConfig
from blindsr.infer import load
from blindsr.models import build_model
from blindsr.tracking import RegistryError, Tracker, log_evaluation, source_run
from helpers import job

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Registered model tiny_x2: version 1 (val 25.0, champion), version 2 (val 24.0, not champion)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    for i, val in enumerate((25.0, 24.0)):
        torch.manual_seed(i)
        model = build_model(ModelConfig(name="srresnet", n_feats=8, n_blocks=1), 2)
        tracker = Tracker(uri)
        tracker.start("blindsr-test", f"run{i}", {"i": i})
        cfg = Config(scale=2, model=ModelConfig(name="srresnet", n_feats=8, n_blocks=1))
        assert tracker.log_model(model, cfg, "tiny_x2", val) == str(i + 1), tracker.summary()
        tracker.end()
    return uri


def models_cli(uri: str, *argv: str) -> int:
    return job("models").main(["--tracking-uri", uri, *argv])


def test_list_and_show(store, capsys):
    assert models_cli(store, "list") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny_x2")]
    assert lines[0].startswith("| tiny_x2 | 2 | - | 24.000 |") and lines[1].startswith(
        "| tiny_x2 | 1 | champion | 25.000 |"
    )
    assert models_cli(store, "show", "tiny_x2") == 0
    out = capsys.readouterr().out
    assert "models:/tiny_x2@latest is version 2" in out and "version 1  aliases: champion" in out


def test_promote_moves_the_alias_and_latest_is_reserved(store, capsys):
    assert models_cli(store, "promote", "tiny_x2", "2", "staging") == 0
    assert mlflow.MlflowClient(store).get_model_version_by_alias("tiny_x2", "staging").version == 2
    assert models_cli(store, "promote", "tiny_x2", "2", "latest") == 2
    assert "'latest' is reserved" in capsys.readouterr().err
    assert models_cli(store, "promote", "tiny_x2", "7", "champion") == 2
    assert "version=7" in capsys.readouterr().err
    assert source_run("models:/tiny_x2@latest", store) == source_run("models:/tiny_x2@staging", store)
    assert next(load("models:/tiny_x2@staging", store, "cpu").parameters()).device.type == "cpu"


def test_compare_tables_the_versions_eval_metrics(store, capsys):
    assert models_cli(store, "compare", "tiny_x2") == 0
    assert "no evaluation metric matching" in capsys.readouterr().out
    for version, value in (("1", 30.5), ("2", 31.25)):
        run = source_run(f"models:/tiny_x2/{version}", store)
        log_evaluation(store, run, "unused", {"eval/cmdsr/Set5/mean/psnr_y": value}, [], "eval/cmdsr")
    assert models_cli(store, "compare", "tiny_x2") == 0
    rows = capsys.readouterr().out.splitlines()
    assert "cmdsr/Set5/mean/psnr_y" in rows[0]
    assert rows[2].endswith("| 31.250 |") and rows[3].endswith("| 30.500 |")


def test_unknown_names_and_missing_stores_are_clear_errors(store, tmp_path, capsys):
    assert models_cli(store, "show", "nope") == 2
    assert "no registered model named 'nope'" in capsys.readouterr().err
    assert models_cli(f"sqlite:///{tmp_path / 'absent.db'}", "list") == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(RegistryError, match="cannot load model models:/tiny_x2/9"):
        load("models:/tiny_x2/9", store)
