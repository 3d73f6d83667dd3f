"""The training progress channel from rank 0 to the driver's console (``blindsr.console.Progress``).

With ``log_to_driver=False`` (the quiet console) nothing a worker prints reaches the driver, so rank 0 sends
small :class:`blindsr.console.Event` objects through a Ray queue (one zero-CPU actor) instead; a driver
thread hands them to the display while ``TorchTrainer.fit`` blocks. A lost event costs a progress line,
never the run: sending never raises.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import TracebackType

from ray.util.queue import Queue

from blindsr.console import Event, send

log = logging.getLogger(__name__)

__all__ = ["ProgressFeed", "send"]

POLL_S = 0.5  # how long the driver thread waits for an event before it checks whether training ended


class ProgressFeed:
    """``with ProgressFeed(sink) as channel:`` runs training; every event put on ``channel`` reaches ``sink``
    (in order, on a driver thread), also those still queued when the block ends."""

    def __init__(self, sink: Callable[[Event], None], maxsize: int = 10_000) -> None:
        self.sink, self.maxsize = sink, maxsize
        self.channel: Queue | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Queue:
        self.channel = Queue(maxsize=self.maxsize, actor_options={"num_cpus": 0})
        self._thread = threading.Thread(target=self._pump, name="blindsr-progress", daemon=True)
        self._thread.start()
        return self.channel

    def _pump(self) -> None:
        assert self.channel is not None
        while True:
            try:
                self.sink(self.channel.get(timeout=POLL_S))
            except queue.Empty:
                if self._done.is_set():
                    return
            except Exception as e:  # the queue actor is gone: the display must not fail the run
                log.debug("progress channel closed: %s", e)
                return

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * POLL_S + 5)
        if self.channel is not None:
            self.channel.shutdown()
