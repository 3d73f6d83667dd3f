"""A sweep's console: one line per trial start, finish, early stop or error, and the best so far.

Tune's own status tables are off unless ``--verbose`` (``tune.RunConfig(verbose=0)``), and the trials' worker
output stays in Ray's log files (``blindsr.console``); this driver-side callback is what remains.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune

from blindsr.train.worker import VAL_METRIC

FINAL_KEY = "mlflow_run_id"  # only ``blindsr.tune.driver``'s last report, after training and evaluation, has it


def last_line(error: BaseException | None, limit: int = 300) -> str | None:
    """The root cause of a Ray error (its last non-empty line, at most ``limit`` characters), or None."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[-1][:limit] if error is not None and lines else None


def _params(config: dict[str, Any], hidden: tuple[str, ...]) -> str:
    items = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items() if k not in hidden]
    return ", ".join(items)


class TrialLines(tune.Callback):
    """Prints ``trial <id> <row> started (params)``, ``... finished: <metric> 25.31 (best: <id> 25.31)``,
    ``... stopped early at step 40 (val 23.10 dB)`` and ``... failed: <reason>``.

    ``metric``/``mode`` rank finished trials (the space file's ``metric``); ``steps`` is a trial's
    ``train.steps``. A trial that ends without its driver's final report (``FINAL_KEY``) was stopped by the
    scheduler."""

    def __init__(self, metric: str, mode: str, steps: int, row_key: str, hidden: tuple[str, ...]) -> None:
        self.metric, self.mode, self.steps = metric, mode, steps  # plain values: Tune pickles its callbacks
        self.row_key, self.hidden = row_key, hidden
        self.best: tuple[str, float] | None = None

    def _name(self, trial: Any) -> str:
        row = (trial.config or {}).get(self.row_key)
        return f"trial {trial.trial_id}" + (f" [{row}]" if row else "")

    def _print(self, text: str) -> None:
        print(text, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        params = _params(trial.config or {}, self.hidden)
        self._print(f"{self._name(trial)} started" + (f" ({params})" if params else ""))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if FINAL_KEY not in result:  # the trial's driver never sent its final report: the scheduler stopped it
            step, val = int(result.get("step", 0) or 0), float(result.get(VAL_METRIC, math.nan))
            self._print(f"{self._name(trial)} stopped early at step {step}/{self.steps} (val {val:.2f} dB)")
            return
        value = float(result.get(self.metric, math.nan))
        if not math.isfinite(value):
            self._print(f"{self._name(trial)} finished without {self.metric}")
            return
        better = self.best is None or (value > self.best[1] if self.mode == "max" else value < self.best[1])
        if better:
            self.best = (trial.trial_id, value)
        assert self.best is not None
        self._print(
            f"{self._name(trial)} finished: {self.metric} {value:.3f} "
            f"(best so far: trial {self.best[0]} {self.best[1]:.3f})"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        try:
            error = trial.get_error()  # the TuneError Tune wrote beside the trial
        except Exception:  # the line is a courtesy: the results table names the error too
            error = None
        reason = last_line(error, limit=200) or f"see {trial.error_file}"
        self._print(f"{self._name(trial)} failed: {reason}")
