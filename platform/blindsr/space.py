"""Search-space files (``search_spaces/*.yaml``): parsing, validation against the config schema, expansion.

Pure (no Ray, no MLflow); :mod:`blindsr.tune` turns a :class:`Space` into Tune's ``param_space``. A file is one flat
mapping whose keys are the fields of the dataclasses below (title, family, base, budgets, rows, space, num_samples,
metric, scheduler, evaluate; every file in ``search_spaces/`` is an example). It parses through
``config.from_dict``, then :func:`validate` checks every dotted key for every budget, row, grid value and range
bound, so an error names the file and the key before Ray starts. Trials = len(rows) × Π len(grid) × num_samples ×
seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from blindsr.config import Config, ConfigError, apply_overrides, build_config, from_dict, yaml_problem
from blindsr.config.model_fields import ignored_message
from blindsr.data.benchmarks import ALIASES
from blindsr.degradations.presets import TEST_PRESETS
from blindsr.evaluation.cases import protocol_specs
from blindsr.models.family import PAPER_FAMILIES, check_paper

BUDGETS = ("smoke", "demo", "paper")
FAMILIES = tuple(PAPER_FAMILIES)  # a paper's job and its presets <family>_<budget>
EVAL_CROP = {"smoke": 48, "demo": 192, "paper": 0}  # HR centre crop of the final evaluation when crop is null
Problems = list[tuple[str, str]]


class SpaceError(ConfigError):
    """A search-space file that does not parse or names an unknown key or value; the message names the file."""


def _budget_problems(budgets: dict[str, Any]) -> Problems:
    return [
        ("budgets", f"unknown budget {b!r}; valid budgets: {', '.join(BUDGETS)}") for b in budgets if b not in BUDGETS
    ]


@dataclass(frozen=True)
class Row:
    label: str = ""
    set: dict[str, Any] = field(default_factory=dict)  # dotted overrides
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: dict[str, list[float]] = field(default_factory=dict)  # set → [psnr] or [psnr, ssim]

    def problems(self) -> Problems:
        out = [] if self.label else [("label", "a row needs a label")]
        wrong = {s: v for s, v in self.paper.items() if not 1 <= len(v) <= 2}
        out += [(f"paper.{s}", f"expected PSNR or [PSNR, SSIM], got {v}") for s, v in wrong.items()]
        return out + _budget_problems(self.budgets)

    def overrides(self, budget: str) -> dict[str, Any]:
        return {**self.set, **self.budgets.get(budget, {})}


@dataclass(frozen=True)
class Distribution:
    """One dimension: exactly one of the four keys, with its values (grid, choice) or [low, high]."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: list[float] | None = None
    loguniform: list[float] | None = None

    @property
    def kind(self) -> str:
        return next(k for k in ("grid", "choice", "uniform", "loguniform") if getattr(self, k) is not None)

    @property
    def values(self) -> list[Any]:
        return getattr(self, self.kind)

    def checked_values(self) -> list[Any]:
        """What the schema check applies: every grid/choice value, both bounds of a range."""
        return self.values if self.kind in ("grid", "choice") else self.values[:2]

    def problems(self) -> Problems:
        given = [k for k in ("grid", "choice", "uniform", "loguniform") if getattr(self, k) is not None]
        if len(given) != 1 or not getattr(self, given[0]):
            return [("", "expected one of grid, choice, uniform, loguniform with a non-empty list")]
        lo_hi = self.values
        if self.kind in ("uniform", "loguniform") and (len(lo_hi) != 2 or lo_hi[0] >= lo_hi[1]):
            return [(self.kind, f"expected [low, high] numbers with low < high, got {lo_hi}")]
        if self.kind == "loguniform" and lo_hi[0] <= 0:
            return [("loguniform", f"bounds must be > 0, got {lo_hi}")]
        return []


@dataclass(frozen=True)
class Asha:
    grace_fraction: float = 0.25
    reduction_factor: float = 2.0

    def problems(self) -> Problems:
        if not 0 < self.grace_fraction <= 1 or self.reduction_factor <= 1:
            return [("", f"need 0 < grace_fraction <= 1 and reduction_factor > 1, got {self}")]
        return []


@dataclass(frozen=True)
class Scheduler:
    asha: Asha | None = None  # None: FIFO


@dataclass(frozen=True)
class Evaluation:
    protocol: str = "cmdsr"
    degradations: list[str] | None = None  # None: every degradation of the protocol
    sets: list[str] = field(default_factory=lambda: ["Set5"])  # under --bench-root; else the corpus' val split
    crop: int | None = None  # None: EVAL_CROP[budget]

    def problems(self) -> Problems:
        if self.protocol not in TEST_PRESETS:
            return [("protocol", f"{self.protocol!r} is not a generated protocol; valid: {', '.join(TEST_PRESETS)}")]
        out = [("sets", f"unknown benchmark {s!r}; valid: {', '.join(ALIASES)}") for s in self.sets if s not in ALIASES]
        return out + ([("crop", f"expected an integer >= 0 or null, got {self.crop}")] if (self.crop or 0) < 0 else [])

    def crop_for(self, budget: str) -> int:
        return EVAL_CROP[budget] if self.crop is None else self.crop


@dataclass(frozen=True)
class Space:
    """A search-space file: its keys are the fields (``path`` and ``text`` are where it was read from)."""

    family: str = ""
    title: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    space: dict[str, Distribution] = field(default_factory=dict)
    num_samples: int = 1
    metric: str = "val/psnr_y"
    mode: Literal["max", "min"] = "max"
    scheduler: Scheduler = field(default_factory=Scheduler)
    evaluate: Evaluation = field(default_factory=Evaluation)
    path: Path = field(default=Path("space.yaml"), metadata={"key": False})
    text: str = field(default="", repr=False, metadata={"key": False})

    def problems(self) -> Problems:
        out = [] if self.family in FAMILIES else [("family", f"expected one of {', '.join(FAMILIES)}")]
        out += [("num_samples", "expected an integer >= 1")] if self.num_samples < 1 else []
        labels = [r.label for r in self.rows]
        out += [("rows", f"row labels must be unique, got {labels}")] if len(set(labels)) != len(labels) else []
        out += [("", "a search space needs rows, space, or both")] if not self.rows and not self.space else []
        return out + _budget_problems(self.budgets)

    @property
    def name(self) -> str:
        return self.path.stem

    def n_trials(self, seeds: int = 1) -> int:
        grids = [len(d.values) for d in self.space.values() if d.kind == "grid"]
        return max(len(self.rows), 1) * math.prod(grids) * self.num_samples * seeds

    def check_seeds(self, seeds: int) -> None:
        """``--seeds``: at least 1; with more, ``num_samples`` may repeat only points it draws at random."""
        if seeds < 1:
            raise SpaceError(f"--seeds must be an integer >= 1, got {seeds}")
        sampled = any(d.kind != "grid" for d in self.space.values())
        if seeds > 1 and self.num_samples > 1 and not sampled:
            raise SpaceError(
                f"{self.path}: num_samples {self.num_samples} repeats every grid point with the same seed; "
                "with --seeds use num_samples: 1"
            )

    def config(self, budget: str, overrides: list[str] | None = None) -> Config:
        """The budget's preset + ``base`` + the budget's overrides + ``--set`` (no row, no sampled value)."""
        if budget not in BUDGETS:
            raise SpaceError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGETS)}")
        cfg = _check(build_config(f"{self.family}_{budget}"), self.base, f"{self.path} base")
        cfg = _check(cfg, self.budgets.get(budget, {}), f"{self.path} budgets.{budget}")
        return apply_overrides(cfg, overrides or [])

    def row(self, label: str | None) -> Row | None:
        return next((r for r in self.rows if r.label == label), None)


def _check(cfg: Config, overrides: dict[str, Any], origin: str) -> Config:
    """``cfg`` with ``overrides`` applied; a ConfigError is re-raised naming ``origin`` (file and place)."""
    try:
        return apply_overrides(cfg, overrides, origin=origin)
    except SpaceError:
        raise
    except ConfigError as e:
        raise SpaceError(str(e)) from e


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
            for key, dist in space.space.items():
                for v in dist.checked_values():
                    trial = _check(row_cfg, {key: v}, f"{p} space.{key}")
                    _paper(space, trial, f"{p} space.{key}", [*given, key])
            _paper(space, row_cfg, where, given)
            try:
                protocol_specs(space.evaluate.protocol, row_cfg.scale, space.evaluate.degradations)
            except ValueError as e:
                raise SpaceError(f"{p} evaluate.degradations: {e}") from e


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
    if isinstance(raw, dict) and raw.get("scheduler") in (None, "fifo", "asha"):  # the short forms
        raw = {**raw, "scheduler": {"asha": {}} if raw.get("scheduler") == "asha" else {}}
    try:
        space = from_dict(Space, raw, origin=str(path))
    except ConfigError as e:
        raise SpaceError(str(e)) from e
    space = Space(**{**space.__dict__, "path": path, "text": text})
    validate(space)
    return space
