"""One node's system metrics in a training run's MLflow page: MLflow's own ``SystemMetricsMonitor`` (CPU,
memory, disk, network; GPU utilisation, memory and power where pynvml is installed), logged as
``system/<node>/<metric>`` into the run rank 0 opened.

The caller starts one per Ray node (on its lowest rank). A tracking server that fails never stops or delays
training: MLflow's monitor gives up at the first failed call, so it is started again ``retry_after`` seconds
later, and ``stop()`` waits a bounded time for its last flush.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

SHORT_ID = 8  # hex characters of Ray's 56-character node id: enough to tell a cluster's nodes apart


def short_node_id(node_id: str) -> str:
    """The label of a node in metric names: the first ``SHORT_ID`` characters of its Ray node id."""
    return node_id[:SHORT_ID]


def _monitor(run_id: str, node: str, every_s: float, uri: str | None, retry_after: float) -> Any:
    """MLflow's monitor, restarted until ``finish()`` or the run's end: it returns at the first failed call."""
    from mlflow import MlflowClient
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    def running() -> bool:  # RUNNING, or the server does not answer (so it may again)
        try:
            return MlflowClient(uri).get_run(run_id).info.status == "RUNNING"
        except Exception:
            return True

    class Restarting(SystemMetricsMonitor):
        def monitor(self) -> None:
            while True:
                try:
                    super().monitor()  # returns on finish(), when the run is not RUNNING, or at a failed call
                except Exception as e:  # a failed sample (psutil, NVML) must not end the node's metrics either
                    log.debug("system metrics of node %s: %s", node, e)
                if self._shutdown_event.wait(retry_after) or not running():
                    return

    # resume_logging: a resumed run's system metrics continue after its last step instead of restarting at 0
    return Restarting(run_id, every_s, resume_logging=True, node_id=node, tracking_uri=uri)


class NodeMonitor:
    """System metrics of this node, every ``every_s`` seconds, into MLflow run ``run_id`` at ``uri``."""

    def __init__(self, uri: str, run_id: str, node: str, every_s: float, retry_after: float = 30.0) -> None:
        self.uri, self.run_id, self.node, self.every_s = uri, run_id, node, every_s
        self.retry_after = max(retry_after, every_s)  # a refused connection fails at once: never a busy loop
        self._monitor: Any = None

    def start(self) -> NodeMonitor:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # as the Tracker: fail soon, retry later
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        try:
            self._monitor = _monitor(self.run_id, self.node, self.every_s, self.uri or None, self.retry_after)
            self._monitor.start()
        except Exception as e:  # e.g. psutil missing: the node's metrics are lost, training goes on
            log.warning("system metrics of node %s are not logged: %s", self.node, e)
            self._monitor = None
        return self

    @property
    def alive(self) -> bool:
        """Whether the monitor's thread runs (MLflow's ``_process``, None once ``finish()`` is done)."""
        thread = getattr(self._monitor, "_process", None)
        return thread is not None and thread.is_alive()

    def stop(self, wait_s: float = 10.0) -> bool:
        """Stop sampling and flush what was sampled, waiting at most ``wait_s`` seconds for a slow server.
        True when the monitor finished in that time (or never started)."""
        if self._monitor is None:
            return True
        done = threading.Thread(target=self._monitor.finish, daemon=True, name="SystemMetricsFinish")
        done.start()
        done.join(wait_s)
        return not done.is_alive()
