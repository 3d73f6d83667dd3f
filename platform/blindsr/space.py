"""Search-space files (``search_spaces/*.yaml``): parsing, validation against the config schema, expansion.

Pure (no Ray, no MLflow); :mod:`blindsr.tune` turns a :class:`Space` into Tune's ``param_space``. A file is one
flat mapping::

    title: "CMDSR Table VIII: alternating step t0 (x4 PSNR, Set5 Middle)"
    family: cmdsr                  # the preset is <family>_<budget>, budget = smoke | demo | paper
    base: {loss.lambda_res: 0.1}   # dotted overrides for every trial (optional)
    budgets: {paper: {scale: 2}}   # dotted overrides for one budget only (optional)
    rows:                          # the table's rows: a grid over labelled settings (optional)
      - label: "t0 = 10"
        set: {optim.t0: 10}        # tied keys live together: {model.support_size: 10, data.patches_per_task: 20}
        budgets: {paper: {...}}    # per-budget settings of this row (optional)
        paper: {Set5: 27.10}       # the paper's PSNR (or [PSNR, SSIM]) per test set (optional)
    space:                         # further dimensions: dotted key → one distribution (optional)
      optim.lr: {loguniform: [1.0e-4, 3.0e-3]}   # also uniform: [lo, hi], choice: [...], grid: [...]
    num_samples: 1                 # Tune samples per grid point
    metric: val/psnr_y             # what the scheduler and "best" use; mode: max | min
    scheduler: fifo                # or {asha: {grace_fraction: 0.2, reduction_factor: 3}}
    evaluate: {protocol: cmdsr, degradations: [middle], sets: [Set5], crop: null}

Trials = len(rows) × Π len(grid) × num_samples. Every key is checked for every budget, every row, every grid
value and both bounds of a continuous range, so an error names the file and the key before Ray starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from blindsr.config import Config, ConfigError, apply_overrides, build_config, yaml_problem
from blindsr.data.benchmarks import ALIASES
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.models.family import check_paper
from blindsr.models.fields import ignored_message

BUDGETS = ("smoke", "demo", "paper")
FAMILIES = ("cmdsr", "cdsr")
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform")
TOP_KEYS = (
    "title",
    "family",
    "base",
    "budgets",
    "rows",
    "space",
    "num_samples",
    "metric",
    "mode",
    "scheduler",
    "evaluate",
)
ROW_KEYS = ("label", "set", "budgets", "paper")
EVAL_KEYS = ("protocol", "degradations", "sets", "crop")
ASHA_KEYS = ("grace_fraction", "reduction_factor")
EVAL_CROP = {"smoke": 48, "demo": 192, "paper": 0}  # HR centre crop of the final evaluation when crop is null


class SpaceError(ConfigError):
    """A search-space file that does not parse or names an unknown key or value; the message names the file."""


@dataclass(frozen=True)
class Row:
    label: str
    settings: dict[str, Any]
    budgets: dict[str, dict[str, Any]]
    paper: dict[str, list[float]]  # set → [psnr] or [psnr, ssim]

    def overrides(self, budget: str) -> dict[str, Any]:
        return {**self.settings, **self.budgets.get(budget, {})}


@dataclass(frozen=True)
class Evaluation:
    protocol: str
    degradations: list[str] | None  # None: every degradation of the protocol
    sets: list[str]  # benchmark sets under --bench-root; without one the corpus' val split stands in
    crop: int | None  # None: EVAL_CROP[budget]

    def crop_for(self, budget: str) -> int:
        return EVAL_CROP[budget] if self.crop is None else self.crop


@dataclass(frozen=True)
class Space:
    path: Path
    title: str
    family: str
    base: dict[str, Any]
    budgets: dict[str, dict[str, Any]]
    rows: list[Row]
    space: dict[str, tuple[str, list[Any]]]  # dotted key → (distribution, values or [lo, hi])
    num_samples: int
    metric: str
    mode: str
    scheduler: dict[str, float] | None  # None: FIFO; else the ASHA settings
    evaluate: Evaluation
    text: str = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.stem

    def n_trials(self) -> int:
        grids = [len(v) for dist, v in self.space.values() if dist == "grid"]
        return max(len(self.rows), 1) * math.prod(grids) * self.num_samples

    def config(self, budget: str, overrides: list[str] | None = None) -> Config:
        """The budget's preset + ``base`` + the budget's overrides + ``--set`` (no row, no sampled value)."""
        if budget not in BUDGETS:
            raise SpaceError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGETS)}")
        cfg = _check(build_config(f"{self.family}_{budget}"), self.base, f"{self.path} base")
        cfg = _check(cfg, self.budgets.get(budget, {}), f"{self.path} budgets.{budget}")
        return apply_overrides(cfg, overrides or [])

    def row(self, label: str | None) -> Row | None:
        return next((r for r in self.rows if r.label == label), None)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpaceError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _unknown(keys: list[str], allowed: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in allowed:
            raise SpaceError(f"{where}: unknown key {key!r}; valid keys: {', '.join(allowed)}")


def _check(cfg: Config, overrides: dict[str, Any], origin: str) -> Config:
    """``cfg`` with ``overrides`` applied; a ConfigError is re-raised naming ``origin`` (file and place)."""
    try:
        return apply_overrides(cfg, overrides, origin=origin)
    except SpaceError:
        raise
    except ConfigError as e:
        raise SpaceError(str(e)) from e


def _parse_rows(raw: Any, where: str) -> list[Row]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise SpaceError(f"{where}: expected a non-empty list of rows")
    rows = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        item = _mapping(item, at)
        _unknown(list(item), ROW_KEYS, at)
        if "label" not in item:
            raise SpaceError(f"{at}: a row needs a label")
        budgets = _mapping(item.get("budgets"), f"{at}.budgets")
        _unknown(list(budgets), BUDGETS, f"{at}.budgets")
        paper = {}
        for test_set, v in _mapping(item.get("paper"), f"{at}.paper").items():
            values = v if isinstance(v, list) else [v]
            if not 1 <= len(values) <= 2 or not all(isinstance(x, int | float) for x in values):
                raise SpaceError(f"{at}.paper.{test_set}: expected PSNR or [PSNR, SSIM], got {v!r}")
            paper[str(test_set)] = [float(x) for x in values]
        settings = _mapping(item.get("set"), f"{at}.set")
        rows.append(Row(str(item["label"]), settings, {k: _mapping(v, at) for k, v in budgets.items()}, paper))
    labels = [r.label for r in rows]
    if len(set(labels)) != len(labels):
        raise SpaceError(f"{where}: row labels must be unique, got {labels}")
    return rows


def _parse_space(raw: Any, where: str) -> dict[str, tuple[str, list[Any]]]:
    out = {}
    for key, spec in _mapping(raw, where).items():
        at = f"{where}.{key}"
        spec = _mapping(spec, at)
        if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise SpaceError(f"{at}: expected one of {', '.join(DISTRIBUTIONS)} with its values, got {spec!r}")
        dist, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{at}.{dist}: expected a non-empty list")
        if dist in ("uniform", "loguniform"):
            if len(values) != 2 or not all(isinstance(v, int | float) for v in values) or values[0] >= values[1]:
                raise SpaceError(f"{at}.{dist}: expected [low, high] numbers with low < high, got {values}")
            if dist == "loguniform" and values[0] <= 0:
                raise SpaceError(f"{at}.loguniform: bounds must be > 0, got {values}")
        out[str(key)] = (dist, values)
    return out


def _parse_scheduler(raw: Any, where: str) -> dict[str, float] | None:
    if raw in (None, "fifo"):
        return None
    if raw == "asha":
        raw = {"asha": {}}
    asha = _mapping(raw, where)
    _unknown(list(asha), ("asha",), where)
    settings = _mapping(asha.get("asha"), f"{where}.asha")
    _unknown(list(settings), ASHA_KEYS, f"{where}.asha")
    out = {"grace_fraction": 0.25, "reduction_factor": 2.0, **{k: float(v) for k, v in settings.items()}}
    if not 0 < out["grace_fraction"] <= 1 or out["reduction_factor"] <= 1:
        raise SpaceError(f"{where}.asha: need 0 < grace_fraction <= 1 and reduction_factor > 1, got {out}")
    return out


def _parse_evaluate(raw: Any, where: str) -> Evaluation:
    ev = _mapping(raw, where)
    _unknown(list(ev), EVAL_KEYS, where)
    protocol = ev.get("protocol", "cmdsr")
    if protocol not in TEST_PRESETS:
        raise SpaceError(
            f"{where}.protocol: {protocol!r} is not a generated protocol; valid: {', '.join(TEST_PRESETS)}"
        )
    sets = ev.get("sets") or ["Set5"]
    for s in sets:
        if s not in ALIASES:
            raise SpaceError(f"{where}.sets: unknown benchmark {s!r}; valid: {', '.join(ALIASES)}")
    crop = ev.get("crop")
    if crop is not None and (not isinstance(crop, int) or crop < 0):
        raise SpaceError(f"{where}.crop: expected an integer >= 0 or null, got {crop!r}")
    return Evaluation(protocol, ev.get("degradations"), list(sets), crop)


def _values_to_check(dist: str, values: list[Any]) -> list[Any]:
    return values if dist in ("grid", "choice") else [values[0], values[1]]


def _paper(space: Space, cfg: Config, where: str, given: list[str]) -> None:
    """The trial config must be trainable by the file's family and read every ``model.*`` key it was given."""
    wrong = check_paper(space.family, cfg.model)
    if wrong:
        raise SpaceError(f"{where}: {wrong} (this file's family is {space.family})")
    ignored = ignored_message(cfg.model, given)
    if ignored:
        raise SpaceError(f"{where}: {ignored}")


def validate(space: Space) -> None:
    """Apply every key of every budget × row × grid/choice value × range bound to the schema."""
    p = space.path
    for budget in BUDGETS:
        cfg = space.config(budget)
        for row in space.rows or [None]:
            where = f"{p} rows[{row.label!r}]" if row is not None else f"{p} base"
            given = [*space.base, *space.budgets.get(budget, {}), *(row.overrides(budget) if row else {})]
            row_cfg = cfg if row is None else _check(cfg, row.overrides(budget), where)
            for key, (dist, values) in space.space.items():
                for v in _values_to_check(dist, values):
                    trial = _check(row_cfg, {key: v}, f"{p} space.{key}")
                    _paper(space, trial, f"{p} space.{key}", [*given, key])
            _paper(space, row_cfg, where, given)
            degs = list(TEST_PRESETS[space.evaluate.protocol](row_cfg.scale))
            for d in space.evaluate.degradations or []:
                if d not in degs:
                    raise SpaceError(
                        f"{p} evaluate.degradations: {d!r} is not a degradation of {space.evaluate.protocol} "
                        f"x{row_cfg.scale}; valid: {', '.join(degs)}"
                    )


def load_space(path: str | Path) -> Space:
    """Read and validate a search-space file; :class:`SpaceError` names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"search-space file not found: {path}")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{path} is not valid YAML: {yaml_problem(e)}") from e
    raw = _mapping(raw, str(path))
    _unknown(list(raw), TOP_KEYS, str(path))
    family = raw.get("family")
    if family not in FAMILIES:
        raise SpaceError(f"{path} family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    budgets = _mapping(raw.get("budgets"), f"{path} budgets")
    _unknown(list(budgets), BUDGETS, f"{path} budgets")
    mode = raw.get("mode", "max")
    if mode not in ("max", "min"):
        raise SpaceError(f"{path} mode: expected max or min, got {mode!r}")
    num_samples = raw.get("num_samples", 1)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise SpaceError(f"{path} num_samples: expected an integer >= 1, got {num_samples!r}")
    space = Space(
        path=path,
        title=str(raw.get("title", path.stem)),
        family=family,
        base=_mapping(raw.get("base"), f"{path} base"),
        budgets={k: _mapping(v, f"{path} budgets.{k}") for k, v in budgets.items()},
        rows=_parse_rows(raw.get("rows"), f"{path} rows"),
        space=_parse_space(raw.get("space"), f"{path} space"),
        num_samples=num_samples,
        metric=str(raw.get("metric", "val/psnr_y")),
        mode=mode,
        scheduler=_parse_scheduler(raw.get("scheduler"), f"{path} scheduler"),
        evaluate=_parse_evaluate(raw.get("evaluate"), f"{path} evaluate"),
        text=text,
    )
    if not space.rows and not space.space:
        raise SpaceError(f"{path}: a search space needs rows, space, or both")
    validate(space)
    return space
