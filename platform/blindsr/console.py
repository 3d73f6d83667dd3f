"""What the jobs print: by default the run's own story, with ``--verbose`` everything the frameworks say.

Quiet means our ``blindsr.*`` INFO lines and everything else at WARNING: Ray starts with ``log_to_driver=False``
(its bars and workers' logs stay in ``/tmp/ray/session_latest/logs``), deprecation warnings and MLflow's download
bars are hidden. Training progress reaches the driver as :class:`Progress` events: one bar on a terminal, else at
most :data:`MAX_LINES` lines. :func:`job` is every job's ``main``. No Ray or MLflow here (``ray_session``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

from blindsr.errors import UserError

MAX_LINES = 10  # progress lines per run when the console is not a terminal (a CI log, a file)
_verbose = False


def configure(verbose: bool = False) -> None:
    """Set the process' console policy once, at the start of a job's ``main``."""
    global _verbose
    _verbose = verbose
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"
    root = logging.getLogger()
    for handler in list(root.handlers):  # plain console handlers only: a test's log capture stays
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(fmt))
    root.addHandler(console)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("blindsr").setLevel(logging.INFO)
    for noisy in ("ray", "ray.data", "mlflow", "alembic"):  # banners, "Creating initial MLflow database tables"
        logging.getLogger(noisy).setLevel(logging.NOTSET if verbose else logging.ERROR)
    if not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model download
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(ray|mlflow|torch|pydantic)\b")


def verbose() -> bool:
    return _verbose


def job(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """A job's ``main``: parse ``argv`` (``--verbose`` added here), set the console policy, ``run(args)``. A
    :class:`~blindsr.errors.UserError` or an ``OSError`` (a disk, a permission) is one ``error: …`` line, exit 2."""
    parser.add_argument("--verbose", action="store_true", help="also show Ray's, MLflow's and libraries' output")
    args = parser.parse_args(argv)
    configure(args.verbose)
    try:
        return run(args)
    except (UserError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def ray_init_options() -> dict[str, Any]:
    """``ray.init`` keywords of the console policy: worker output on the console only when verbose."""
    return {"log_to_driver": _verbose, "logging_level": logging.INFO if _verbose else logging.ERROR}


def run_line(cfg: Any) -> str:
    """One line a training job starts with: what trains, how much, and where it is tracked."""
    d, w = cfg.data, cfg.scaling.num_workers
    patches = d.tasks_per_step * d.patches_per_task * w
    return (
        f"{cfg.name}: {cfg.model.name} x{cfg.scale}, {cfg.train.steps} steps of {d.tasks_per_step * w} tasks x "
        f"{d.patches_per_task} patches ({patches} LR {d.patch_size}px patches), {w} worker(s), "
        f"lr {cfg.optim.lr:g}; data {d.source}; tracking {cfg.tracking.tracking_uri}"
    )


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass(frozen=True)
class Event:
    """What rank 0 sends the driver: a step's training losses, or a validation."""

    step: int
    losses: dict[str, float]  # e.g. {"L1": 12.3, "contrast": 5.1} (train/loss_* without the prefix)
    val_psnr: float | None = None  # set for a validation event
    bicubic_psnr: float | None = None
    sent: float = 0.0  # time.time() on the worker
    note: str | None = None  # a line for the user from a worker or actor (shown once, however many send it)


def send(channel: Any, event: Event) -> None:
    """Put ``event`` on ``channel`` (a ``ray.util.queue.Queue``, see ``blindsr.train.progress``) without
    waiting; a full, dead or absent channel drops it: a lost progress line never costs the run."""
    if channel is None:
        return
    try:
        channel.put_nowait(event)
    except Exception as e:  # Full, or the queue's actor died with its driver
        logging.getLogger(__name__).debug("progress event for step %d dropped: %s", event.step, e)


class Progress:
    """Driver-side display of :class:`Event` s: ``step 120/400 · L1 12.31 · 1,530 patches/s · ETA 3:12``.

    ``patches_per_step`` is the global batch (tasks × query patches over all workers). On a terminal one tqdm
    bar is updated in place and validations are written above it; elsewhere a line is printed every
    ``total / MAX_LINES`` steps (rounded up to a multiple of ``log_every``) and at the last step."""

    def __init__(
        self, total: int, patches_per_step: int, log_every: int, out: TextIO | None = None, bar: bool | None = None
    ) -> None:
        self.total, self.patches_per_step, self.out = total, patches_per_step, out or sys.stdout
        every = max(1, log_every)
        self.line_every = every * max(1, math.ceil(total / MAX_LINES / every))
        self.bar = tqdm(total=total, unit="step", file=self.out, dynamic_ncols=True) if (
            self.out.isatty() if bar is None else bar
        ) else None  # fmt: skip
        self.first: tuple[int, float] | None = None  # (step, time) of the first event of this attempt
        self.last_step = 0
        self.notes: set[str] = set()

    def rate(self, event: Event) -> float:
        """Patches per second since the first event seen (steps of a resumed attempt count from there)."""
        if self.first is None or event.step <= self.first[0] or event.sent <= self.first[1]:
            return math.nan
        return (event.step - self.first[0]) * self.patches_per_step / (event.sent - self.first[1])

    def line(self, event: Event) -> str:
        rate = self.rate(event)
        eta = (self.total - event.step) * self.patches_per_step / rate if rate > 0 else math.nan
        losses = " · ".join(f"{k} {v:.3f}" for k, v in event.losses.items())
        rate_text = f"{rate:,.0f} patches/s" if math.isfinite(rate) else "- patches/s"
        return f"step {event.step}/{self.total} · {losses} · {rate_text} · ETA {duration(eta)}"

    def __call__(self, event: Event) -> None:
        if event.note is not None:
            if event.note not in self.notes:
                self.notes.add(event.note)
                self._write(event.note)
            return
        if self.first is None or event.step < self.last_step:  # the first event, or a restarted attempt
            self.first = (event.step, event.sent or time.time())
        if event.val_psnr is not None:
            text = f"step {event.step}: validation PSNR-Y {event.val_psnr:.2f} dB (bicubic {event.bicubic_psnr:.2f})"
            self._write(text)
            return
        if self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix_str(self.line(event).split(" · ", 1)[1], refresh=True)
        elif event.step % self.line_every == 0 or event.step >= self.total:
            self._write(self.line(event))
        self.last_step = event.step

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def losses_of(metrics: dict[str, float]) -> dict[str, float]:
    """``train/loss_l1`` → ``L1``, ``train/loss_contrast`` → ``contrast`` (what the progress line shows)."""
    names = {"l1": "L1"}
    return {
        names.get(k.removeprefix("train/loss_"), k.removeprefix("train/loss_")): float(v)
        for k, v in metrics.items()
        if k.startswith("train/loss_")
    }
