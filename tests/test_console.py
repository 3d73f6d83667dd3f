"""The quiet console: the progress display (Ray-free), the channel from workers to the driver (real Ray), and
the policy a job sets (what Ray is told, what logging and warnings show)."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
import ray

from blindsr import console
from blindsr.config import build_config
from blindsr.console import Event, Progress, duration, losses_of, run_line


def shown(events: list[Event], total: int = 400, log_every: int = 10, bar: bool = False) -> list[str]:
    out = io.StringIO()
    progress = Progress(total, 32, log_every, out=out, bar=bar)
    for e in events:
        progress(e)
    progress.close()
    return out.getvalue().splitlines()


def training(total: int = 400, every: int = 10, seconds_per_step: float = 0.5) -> list[Event]:
    events = []
    for step in range(every, total + 1, every):
        events.append(Event(step, {"L1": 20 - step / 100, "contrast": 1.0}, sent=step * seconds_per_step))
        if step % 100 == 0:
            events.append(Event(step, {}, val_psnr=30.0 + step / 1000, bicubic_psnr=28.0, sent=step * seconds_per_step))
    return events


def test_progress_lines_are_few_and_carry_step_losses_rate_and_eta():
    lines = shown(training())
    progress = [line for line in lines if "/400" in line]
    assert len(progress) == console.MAX_LINES  # every 40 steps of 400, the last one included
    assert progress[0] == "step 40/400 · L1 19.600 · contrast 1.000 · 64 patches/s · ETA 3:00"  # 2 steps/s × 32
    assert progress[-1].startswith("step 400/400") and progress[-1].endswith("ETA 0:00")
    assert [line for line in lines if "validation" in line] == [
        f"step {s}: validation PSNR-Y {30 + s / 1000:.2f} dB (bicubic 28.00)" for s in (100, 200, 300, 400)
    ]


def test_a_short_run_prints_every_logged_step_and_a_restart_resets_the_rate():
    events = [Event(s, {"L1": 1.0}, sent=float(s)) for s in (1, 2, 3)]
    events += [Event(2, {"L1": 1.0}, sent=100.0), Event(3, {"L1": 1.0}, sent=101.0)]  # restarted from step 1
    lines = shown(events, total=3, log_every=1)
    assert lines[0].endswith("- patches/s · ETA ?")  # no rate from a single event
    assert lines[2] == "step 3/3 · L1 1.000 · 32 patches/s · ETA 0:00"
    assert lines[3].endswith("- patches/s · ETA ?") and lines[4].endswith("32 patches/s · ETA 0:00")


def test_notes_are_shown_once_and_the_terminal_bar_keeps_validations():
    note = Event(0, {}, note="data (train): 3 images; skipped 1 (1 unreadable)")
    assert shown([note, note], bar=False) == ["data (train): 3 images; skipped 1 (1 unreadable)"]
    lines = shown(training(total=200), total=200, bar=True)
    assert sum("validation PSNR-Y" in line for line in lines) == 2
    assert not any(line.startswith("step 40/200 ·") for line in lines)  # the bar replaces the progress lines


def test_helpers():
    assert losses_of({"train/loss_l1": 3.0, "train/loss_contrast": 1.5, "train/lr_base": 1e-4}) == {
        "L1": 3.0,
        "contrast": 1.5,
    }
    assert [duration(s) for s in (5, 75, 3725, float("nan"))] == ["0:05", "1:15", "1:02:05", "?"]
    line = run_line(build_config("cdsr_demo"))
    assert line.startswith("cdsr_demo: cdsr x2, 400 steps of ") and "patches" in line


@pytest.mark.ray
def test_the_policy_quiets_frameworks_unless_verbose(ray_session):
    try:
        console.configure(verbose=False)
        assert console.ray_init_options() == {"log_to_driver": False, "logging_level": logging.ERROR}
        assert logging.getLogger("blindsr.train").isEnabledFor(logging.INFO)
        assert not logging.getLogger("mlflow.store").isEnabledFor(logging.WARNING)
        from ray.util.annotations import RayDeprecationWarning

        from blindsr.train.launch import ensure_ray

        ensure_ray()  # sets Ray's deprecation filter (Ray itself is already up: the module's ray_session)
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("old", RayDeprecationWarning, stacklevel=1)
        assert not caught
        console.configure(verbose=True)
        assert console.ray_init_options()["log_to_driver"] is True
        assert logging.getLogger("mlflow.store").isEnabledFor(logging.INFO)
    finally:
        console.configure(verbose=True)
        warnings.resetwarnings()
        for name in ("ray", "mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.ray
def test_events_sent_from_remote_tasks_reach_the_driver_in_order(ray_session):
    from blindsr.train.progress import ProgressFeed

    @ray.remote(num_cpus=0)
    def work(channel, first: int) -> None:
        for step in range(first, first + 5):
            console.send(channel, Event(step, {"L1": float(step)}))

    seen: list[int] = []
    with ProgressFeed(lambda e: seen.append(e.step)) as channel:
        ray.get(work.remote(channel, 1))
        ray.get(work.remote(channel, 6))
    assert seen == list(range(1, 11))  # everything queued before the block ended was delivered
    console.send(channel, Event(11, {}))  # the channel is shut down: dropped, not raised
    console.send(None, Event(12, {}))
