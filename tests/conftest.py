"""Shared fixtures. GPU tests skip without CUDA; ray/slow tests run everywhere (CI included)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Every Ray runtime and job the tests start inherits these. Ray Train's preemption watcher (one actor per
# training run, polling for spot-node notices) has nothing to watch on this machine. Its controller polls the
# train workers every 2 s, and a worker's ray.train.report (each checkpoint) waits for the poll that takes the
# previous one: the tests' short runs checkpoint every few steps, so they poll 10× as often.
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-hog",
        action="store_true",
        help="keep every core busy with a spinning process for the whole session (tests/faults.py CpuHog)",
    )


@pytest.fixture(scope="session", autouse=True)
def cpu_hog(request: pytest.FixtureRequest):
    """``pytest --cpu-hog``: the tests run beside one busy process per core (no test may race the clock)."""
    if not request.config.getoption("--cpu-hog"):
        yield None
        return
    from faults import CpuHog

    with CpuHog() as hog:
        yield hog


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real non-square photograph (300×451×3 uint8)."""
    from blindsr.data.corpus import image

    return image("chelsea")


@pytest.fixture(scope="session")
def task_batch():
    """Factory: real degraded tasks from the built-in corpus as a training batch.

    ``task_batch(specs, m, patch=12, seed=0)`` → (lr (k, m, 3, p, p), hr (k, m, 3, s·p, s·p)) float [0, 1],
    one task per spec (k = len(specs)), m patches each sharing that spec.
    """
    from blindsr.data.patches import TaskSampler
    from blindsr.data.sources import load_corpus

    pool = load_corpus("train")

    def make(specs, m: int, patch: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        sampler = TaskSampler(pool, patch, m, specs[0].scale, augment=False)
        rng = np.random.default_rng(seed)
        tasks = [sampler.sample(rng, spec) for spec in specs]
        lr = torch.from_numpy(np.stack([t.lr for t in tasks])).float() / 255
        hr = torch.from_numpy(np.stack([t.hr for t in tasks])).float() / 255
        return lr, hr

    return make


@pytest.fixture(scope="session")
def postgres_database():
    """Factory ``postgres_database(name) → URI``: fresh databases on one PostgreSQL server for the session
    (installed with apt-get when absent, as .ci/run does)."""
    from servers import postgres

    with postgres() as database:
        yield database


@pytest.fixture(scope="session")
def tracking_server(postgres_database, tmp_path_factory):
    """A real ``mlflow server`` over HTTP with authentication: PostgreSQL backend (and a second database for
    its users), artifacts served by the server itself. ``.logins["trainer"]`` / ``["reader"]`` are the
    environment variables of a training user and a read-only user (made with ``jobs/mlflow_users.py``)."""
    from servers import MlflowServer

    folder = tmp_path_factory.mktemp("mlflow")
    server = MlflowServer(postgres_database("shared"), folder / "artifacts", auth_db=postgres_database("users"))
    server.start()
    server.logins = {"trainer": server.add_user("trainer", "train"), "reader": server.add_user("reader", "read")}
    yield server
    server.stop()


@pytest.fixture
def login(monkeypatch):
    """``login(env)``: this test process (and a Ray runtime it starts afterwards) uses these credentials;
    ``login({})`` clears them."""

    def use(env: dict[str, str]) -> None:
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)

    return use


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray of 4 logical CPUs for one test module, quiet, without Ray Data progress bars."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False
    yield ray
    context.enable_progress_bars = bars
    ray.shutdown()
