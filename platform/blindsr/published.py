"""Published results: the papers' PSNR-Y per method, protocol, scale and test set, each with its source.

Read from a YAML file (``benchmarks/published.yaml``): ``reported`` says which columns a paper's figure covers
per protocol and scale (``mean``, the mean over the protocol's degradations, unless listed), ``entries`` hold
the numbers. A bad file is refused by name (``InputError``). No Ray, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from blindsr.data.benchmarks import ALIASES
from blindsr.errors import InputError

MEAN = "mean"
FIELDS = {"method", "family", "params_m", "protocol", "scale", "source", "psnr_y"}


@dataclass(frozen=True)
class Published:
    """One paper's numbers for one method under one protocol at one scale: ``psnr_y[set]`` holds one value per
    reported column (in ``Catalogue.columns(protocol, scale)`` order)."""

    method: str
    family: str | None  # our model name it corresponds to (None: a method we do not have)
    params_m: float | None
    protocol: str
    scale: int
    source: str
    psnr_y: dict[str, tuple[float, ...]]


def canonical_set(name: str) -> str:
    """A benchmark's canonical name (``BSD100`` → ``B100``); other names unchanged."""
    return next((k for k, names in ALIASES.items() if name in names or name.lower() == k.lower()), name)


@dataclass(frozen=True)
class Catalogue:
    reported: dict[tuple[str, int], tuple[str, ...]]
    entries: tuple[Published, ...]

    def columns(self, protocol: str, scale: int) -> tuple[str, ...]:
        """The columns the papers report for ``protocol`` at ×``scale`` (``("mean",)`` when none are listed)."""
        return self.reported.get((protocol, scale), (MEAN,))

    def find(self, protocol: str, scale: int) -> list[Published]:
        return [e for e in self.entries if e.protocol == protocol and e.scale == scale]


def _entry(raw: object, i: int, reported: dict[tuple[str, int], tuple[str, ...]], where: str) -> Published:
    if not isinstance(raw, dict) or set(raw) != FIELDS:
        raise InputError(f"{where}: entry {i} must have exactly the keys {', '.join(sorted(FIELDS))}")
    n = len(reported.get((raw["protocol"], int(raw["scale"])), (MEAN,)))
    scores = {}
    for name, value in dict(raw["psnr_y"]).items():
        values = tuple(float(v) for v in (value if isinstance(value, list) else [value]))
        if len(values) != n:
            raise InputError(f"{where}: entry {i} ({raw['method']}) {name}: {len(values)} values, {n} reported")
        scores[canonical_set(str(name))] = values
    params = None if raw["params_m"] is None else float(raw["params_m"])
    family = None if raw["family"] is None else str(raw["family"])
    return Published(str(raw["method"]), family, params, raw["protocol"], int(raw["scale"]), raw["source"], scores)


def load_published(path: str | Path) -> Catalogue:
    """The catalogue in ``path``. Raises InputError naming the file and what is wrong in it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"published results file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or set(data) != {"reported", "entries"}:
        raise InputError(f"{path}: expected the keys 'reported' and 'entries'")
    reported = {
        (str(p), int(x)): tuple(str(c) for c in cols)
        for p, by in dict(data["reported"]).items()
        for x, cols in by.items()
    }
    entries = tuple(_entry(raw, i, reported, str(path)) for i, raw in enumerate(data["entries"] or []))
    return Catalogue(reported, entries)
