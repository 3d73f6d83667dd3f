"""Loading a config: dict ↔ dataclass with strict checking, YAML files, ``--set`` overrides, and
:func:`build_config` (preset → YAML → overrides). Every path goes through :func:`from_dict`, which rejects unknown
keys (with a "did you mean"), keys that were renamed (naming the new one) and wrong types, naming the key,
where it came from and the valid choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from blindsr.config.model_fields import ignored_message
from blindsr.config.presets import PRESETS
from blindsr.config.schema import Config, ConfigError
from blindsr.degradations.presets import TRAIN_PRESETS

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _where(origin: str | None) -> str:
    return f" in {origin}" if origin else ""


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if _is_optional(tp):
        return f"{_type_name(_strip_optional(tp))} | None"
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"list[{_type_name(get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def _strip_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    return args[0]


def _coerce(value: Any, tp: Any, key: str, origin: str | None) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``key``."""

    def fail(extra: str = "") -> typing.NoReturn:
        raise ConfigError(
            f"{key}{_where(origin)}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__}){extra}"
        )

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, origin, prefix=f"{key}.")
    if _is_optional(tp):
        if value is None or (isinstance(value, str) and value.strip().lower() in {"none", "null", "~"}):
            return None
        return _coerce(value, _strip_optional(tp), key, origin)
    if get_origin(tp) in (Union, types.UnionType):  # e.g. int | Literal["auto"]: the first member that takes it
        for member in get_args(tp):
            try:
                return _coerce(value, member, key, origin)
            except ConfigError:
                continue
        fail()
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        raise ConfigError(
            f"{key}{_where(origin)}: {value!r} is not a valid choice; valid choices: "
            + ", ".join(repr(c) for c in choices)
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        fail()
    if tp is int:
        if isinstance(value, bool):
            fail()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    fail()
                if f.is_integer():
                    return int(f)
        fail()
    if tp is float:
        if isinstance(value, bool):
            fail()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "1e-4" as a string (YAML 1.1)
            try:
                return float(value)
            except ValueError:
                fail()
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if get_origin(tp) is list:
        (item_tp,) = get_args(tp)
        if isinstance(value, str):
            text = value.strip()
            value = yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = [value]  # a lone number is a list of one, as "--set key=5" already is
        if not isinstance(value, list):
            fail()
        return [_coerce(v, item_tp, f"{key}[{i}]", origin) for i, v in enumerate(value)]
    if get_origin(tp) is dict:
        if not isinstance(value, dict):
            fail()
        item_tp = get_args(tp)[1]
        return {str(k): _coerce(v, item_tp, f"{key}.{k}", origin) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # a schema bug, not a user error


def _section_hints(cls: type) -> dict[str, Any]:
    """The keys a mapping may give ``cls``: its fields, less those marked ``metadata={"key": False}``."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.metadata.get("key", True)}


# keys that moved: the error names where to now (not a "did you mean" guess)
RENAMED = {
    "data.task_size": "use 'data.tasks_per_step'",
    "train.device": "use 'scaling.use_gpu' (true, false, or null: GPUs when the cluster has them)",
    "data.val_tasks": "removed: in-training validation reads train.val_images whole images of data.val_source",
}


def from_dict(cls: type, data: dict[str, Any] | None, origin: str | None = None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) nested dict; missing keys keep defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"{where}{_where(origin)}: expected a mapping of keys, got {type(data).__name__}")
    hints = _section_hints(cls)
    names = list(hints)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if full in RENAMED:
            raise ConfigError(f"{full!r}{_where(origin)} was renamed: {RENAMED[full]}")
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            section = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"unknown key {full!r}{_where(origin)}{hint}; valid keys in {section}: {', '.join(names)}"
            )
        kwargs[key] = _coerce(value, hints[key], full, origin)
    obj = cls(**kwargs)
    for key, problem in getattr(obj, "problems", lambda: [])():
        raise ConfigError(f"{prefix}{key}{_where(origin)}: {problem}")
    return obj


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (lists, not tuples) suitable for YAML and for the Ray boundary."""
    return dataclasses.asdict(cfg)


def dotted_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of a nested mapping (``{"optim": {"lr": 1}}`` → ``["optim.lr"]``)."""
    out: list[str] = []
    for k, v in data.items():
        out += dotted_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def flatten(cfg: Any) -> dict[str, Any]:
    """``{"optim.lr": 1e-4, ...}``: the dotted view used for MLflow params and search spaces."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(to_dict(cfg), "")
    return out


# --------------------------------------------------------------------------------------------------
# YAML and overrides
# --------------------------------------------------------------------------------------------------


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parse error on one line: what went wrong and where (1-based line and column)."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[-1]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def load_yaml(path: str | Path, base: Config | None = None) -> Config:
    """Read a YAML config file. Keys it names replace those of ``base`` (default: ``Config()``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {yaml_problem(exc)}") from exc
    return merge(base or Config(), data, origin=str(path))


def save_yaml(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(cfg))
    return path


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def merge(cfg: Config, data: dict[str, Any], origin: str | None = None) -> Config:
    """Overlay a nested partial dict onto ``cfg`` (validated like a fresh load). ``degradation`` may name a
    training distribution (``degradation: dasr_iso``): the whole section, at the merged config's scale."""
    if isinstance(data, dict) and isinstance(name := data.get("degradation"), str):
        if name not in TRAIN_PRESETS:
            valid = ", ".join(TRAIN_PRESETS)
            raise ConfigError(f"degradation{_where(origin)}: unknown training distribution {name!r}; valid: {valid}")
        scale = _coerce(data.get("scale", cfg.scale), int, "scale", origin)
        data = {**data, "degradation": to_dict(TRAIN_PRESETS[name](scale))}
    merged = _deep_update(to_dict(cfg), data, origin)
    return from_dict(type(cfg), merged, origin)


def _deep_update(base: dict[str, Any], new: dict[str, Any], origin: str | None, prefix: str = "") -> dict:
    if not isinstance(new, dict):
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"{where}{_where(origin)}: expected a mapping, got {type(new).__name__}")
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v, origin, prefix=f"{prefix}{k}.")
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=2e-4"`` → ``("optim.lr", "2e-4")``; the value is typed later against the schema."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=2e-4")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    return key, value


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any], origin: str = "--set") -> Config:
    """Apply ``--set a.b=value`` overrides (strings) or a ``{"a.b": value}`` mapping; errors name ``origin``."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    nested: dict[str, Any] = {}
    for key, value in items:
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return merge(cfg, nested, origin=origin)


def add_override_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--set KEY=VALUE`` option (repeatable, collected in ``args.overrides``) every job shares."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def build_config(
    preset: str | None = None, config_file: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Preset → YAML file → ``--set`` overrides, in that order; every layer validated, and a ``model.*`` key the
    file or an override sets that the chosen model does not read is refused (preset values are not checked)."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]() if preset else Config()
    given = [parse_override(o)[0] for o in overrides or []]
    if config_file is not None:
        cfg = load_yaml(config_file, base=cfg)
        given += dotted_keys(yaml.safe_load(Path(config_file).read_text()) or {})
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    if ignored := ignored_message(cfg.model, given):  # a model.* key set for a model that never reads it
        raise ConfigError(ignored)
    return cfg
