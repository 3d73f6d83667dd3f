"""A node's system metrics in a run (``blindsr.tracking.system``): the monitor goes on trying while the server
does not answer, and ``tracking.system_metrics_every_s`` refuses a negative interval. That CPU and memory
arrive from two ranks under two node ids, in a real job on two Ray nodes: tests/test_multinode_job.py."""

from __future__ import annotations

import time

import pytest

from blindsr.config import ConfigError, build_config
from blindsr.tracking.system import NodeMonitor, short_node_id

NODE = short_node_id("a1b2c3d4e5f6" * 5)


@pytest.fixture(autouse=True)
def http_env(monkeypatch):
    """The monitor's defaults for MLflow's HTTP retries, restored after each test."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refused connection fails at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def test_node_monitor_keeps_trying_a_server_that_does_not_answer():
    """MLflow's monitor returns at its first failed call; this one is started again and never raises."""
    monitor = NodeMonitor("http://127.0.0.1:9", "0" * 32, NODE, every_s=0.05, retry_after=0.05).start()
    time.sleep(1.0)  # ~10 rounds of a sample, a refused call and a restart
    assert monitor.alive
    assert monitor.stop()
    assert not monitor.alive


def test_a_negative_interval_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"tracking\.system_metrics_every_s.*must be >= 0, got -1"):
        build_config("cmdsr_smoke", overrides=["tracking.system_metrics_every_s=-1"])
    assert build_config("cmdsr_smoke", overrides=["tracking.system_metrics_every_s=0"]).tracking.problems() == []
