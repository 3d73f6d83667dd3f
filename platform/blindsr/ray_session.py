"""Connecting to Ray, or starting a local one, under the console's policy (``blindsr.console``): the one place
the jobs, the sweeps and the evaluation fan-out start Ray. Quiet by default: Ray's deprecation warnings and the
raylet's own messages to the driver ("N worker processes have been started…") go to the ``ray`` logger, which
shows them only with ``--verbose``; a job's own errors still surface as its errors."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import ray
import ray._private.worker as ray_worker
from ray.util.annotations import RayDeprecationWarning

from blindsr import console
from blindsr.data.plan import local_cluster

log = logging.getLogger("ray")


def ensure_ray(local_cpus: int | None = None) -> None:
    """Connect to the cluster of ``$RAY_ADDRESS`` (set by ``ray job submit``), else start a local Ray.

    Locally at least 4 logical CPUs are declared: a train worker, degradation actors and Ray Data's read
    tasks must all get a CPU slot (ray-project/ray#44687), even on a 2-core laptop."""
    if not console.verbose():  # importing Ray put its own "show once per module" filter in front of ours
        warnings.filterwarnings("ignore", category=RayDeprecationWarning)  # e.g. from Ray Train's own calls
        ray_worker.print_to_stdstream = _raylet_to_logger  # read at each message by Ray's error listener
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**console.ray_init_options())
    else:
        ray.init(
            address="local",  # never join a `ray start` cluster by accident (RAY_ADDRESS picks one)
            num_cpus=local_cpus or int(local_cluster()["CPU"]),
            include_dashboard=True,  # its state API frees a killed trainer's CPUs (else later trials wait for ever)
            **console.ray_init_options(),
        )


_print_to_stdstream = ray_worker.print_to_stdstream


def _raylet_to_logger(data: dict[str, Any], ignore_prefix: bool) -> None:
    """Ray's printer of worker output, except that the raylet's messages become ``ray`` WARNING log records."""
    if data.get("pid") == "raylet" and not console.verbose():
        for line in data.get("lines", []):
            log.warning("(raylet) %s", line)
        return
    _print_to_stdstream(data, ignore_prefix=ignore_prefix)
