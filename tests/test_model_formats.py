"""Registry models without pickle: weights as safetensors + the resolved config + a loader (MLflow "model from
code"). In a fresh Python with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``, ``blindsr.infer.load`` returns the
``nn.Module`` and ``mlflow.pyfunc.load_model(...).predict`` maps (B, 3, h, w) in [0, 1] to (B, 3, s·h, s·w), for
CMDSR (self-support inside), CDSR, DASR, CdCL and KDSR, equal to the network they were logged from. A version in
MLflow's old pickle format still loads where pickle is allowed, with a DeprecationWarning, and is refused where it
is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from blindsr.config import Config
from blindsr.infer import load
from blindsr.models import build_model
from blindsr.models.inference import super_resolve
from blindsr.tracking import RegistryError, Tracker
from helpers import tiny_config

pytestmark = pytest.mark.slow  # fresh Python processes importing torch and MLflow: about a minute
FAMILIES = ("cmdsr", "cdsr", "dasr", "cdcl", "kdsr")

FRESH_PYTHON = """
import sys, warnings
import mlflow, numpy as np, torch
from blindsr.infer import load
from blindsr.models.inference import super_resolve
warnings.filterwarnings("error", ".*pickle format", DeprecationWarning)  # the safe format: never the pickle path
folder, names = sys.argv[1], sys.argv[2:]
x = np.load(f"{folder}/x.npy")
for name in names:
    uri = f"models:/{name}_x2@champion"
    net = load(uri, device="cpu")
    assert type(net).__name__.lower() == name, type(net)
    first = super_resolve(net, torch.from_numpy(x[:1])).numpy()
    batch = mlflow.pyfunc.load_model(uri).predict(x)
    np.save(f"{folder}/{name}_load.npy", first)
    np.save(f"{folder}/{name}_pyfunc.npy", batch)
print("loaded", *names)
"""


def tiny(name: str) -> tuple[Config, torch.nn.Module]:
    cfg = tiny_config(name)
    torch.manual_seed(FAMILIES.index(name) if name in FAMILIES else 9)
    return cfg, build_model(cfg.model, cfg.scale).eval()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('formats') / 'mlflow.db'}"
    for name in FAMILIES:
        tracker = Tracker(uri)
        tracker.start("blindsr-formats", name, {"model.name": name})
        assert tracker.log_model(tiny(name)[1], tiny(name)[0], f"{name}_x2", 30.0) == "1", tracker.summary()
        tracker.end()
    return uri


def test_registry_models_load_and_predict_with_pickle_disabled(store, tmp_path):
    x = np.random.default_rng(0).random((2, 3, 20, 24), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PYTHON, str(tmp_path), *FAMILIES], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for name in FAMILIES:
        net = tiny(name)[1]
        want = [super_resolve(net, torch.from_numpy(x[i : i + 1])).numpy() for i in range(2)]
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_load.npy"), want[0], rtol=0, atol=1e-6)
        batch = np.load(tmp_path / f"{name}_pyfunc.npy")
        assert batch.shape == (2, 3, 40, 48) and batch.dtype == np.float32
        np.testing.assert_allclose(batch, np.concatenate(want), rtol=0, atol=1e-6)  # each image on its own


def test_the_logged_model_holds_no_pickle(store, tmp_path):
    mlflow.set_tracking_uri(store)  # models:/ URIs resolve through the global registry URI
    folder = mlflow.artifacts.download_artifacts("models:/cdsr_x2/1", dst_path=str(tmp_path), tracking_uri=store)
    names = sorted(p.name for p in Path(folder).rglob("*") if p.is_file())
    assert "model.safetensors" in names and "config.yaml" in names
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pth", ".cloudpickle"))], names


def test_a_pickle_format_version_loads_with_a_warning_where_allowed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    net = tiny("srresnet")[1]
    with mlflow.start_run():
        mlflow.pytorch.log_model(
            net, name="model", serialization_format="pickle", registered_model_name="old_x2", pip_requirements=[]
        )  # requirements given: MLflow's inference would load the model in a subprocess
    with pytest.warns(DeprecationWarning, match="pickle format"):
        loaded = load("models:/old_x2/1", uri, "cpu")
    x = torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # MLflow reads it at each load
    with pytest.raises(RegistryError, match="old_x2.*MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        load("models:/old_x2/1", uri, "cpu")
