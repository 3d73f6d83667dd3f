"""The run configuration: ``schema`` (the dataclass tree and each section's checks), ``loading`` (strict dict ↔
dataclass, YAML, ``--set`` overrides, ``build_config``) and ``presets`` (paper, demo, smoke). Import from here."""

from blindsr.config.loading import (
    RENAMED,
    add_override_argument,
    apply_overrides,
    build_config,
    dump_yaml,
    flatten,
    from_dict,
    load_yaml,
    merge,
    parse_override,
    save_yaml,
    to_dict,
    yaml_problem,
)
from blindsr.config.presets import PRESETS
from blindsr.config.schema import (
    PLACEMENT_STRATEGIES,
    Config,
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ScalingConfig,
    TrackingConfig,
    TrainConfig,
)
from blindsr.degradations.config import DegradationConfig

__all__ = [
    "PLACEMENT_STRATEGIES",
    "PRESETS",
    "RENAMED",
    "Config",
    "ConfigError",
    "DataConfig",
    "DegradationConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "ScalingConfig",
    "TrackingConfig",
    "TrainConfig",
    "add_override_argument",
    "apply_overrides",
    "build_config",
    "dump_yaml",
    "flatten",
    "from_dict",
    "load_yaml",
    "merge",
    "parse_override",
    "save_yaml",
    "to_dict",
    "yaml_problem",
]
