"""The typed configuration tree of a blindsr run.

Dataclasses are the schema; YAML is only serialisation. Every loader path (YAML file, dict from the
Ray boundary, ``--set a.b=value`` overrides) goes through :func:`from_dict`, which rejects unknown keys
and wrong types with a message naming the key, where it came from and the valid choices.

Presets are plain functions returning a modified default :class:`Config` (compose, don't inherit).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which, where, and what is allowed."""


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


@dataclass
class DegradationConfig:
    """Distribution that ``sample_spec`` draws one degradation per task from.

    Kernel parameters follow ``convention``: ``eig_var`` gives λ1, λ2 as covariance eigenvalues
    (variances; CMDSR, CDSR/MANet, KAIR), ``sigma_std`` as standard deviations (DASR, BasicSR).
    Isotropic widths are always standard deviations σ.
    """

    kernel: Literal["iso", "aniso", "mixed", "none"] = "iso"
    kernel_size: int = 15
    convention: Literal["eig_var", "sigma_std"] = "eig_var"
    # isotropic σ: a discrete grid lo:step:hi when sigma_step > 0 (CMDSR), else continuous U(lo, hi)
    sigma_range: list[float] = field(default_factory=lambda: [0.2, 4.0])
    sigma_step: float = 0.1
    # anisotropic λ1 ~ U(range), λ2 ~ U(lambda2_range) or U(lambda2_range[0], λ1) when lambda2_le_lambda1
    lambda1_range: list[float] = field(default_factory=lambda: [0.7, 10.0])
    lambda2_range: list[float] = field(default_factory=lambda: [0.7, 10.0])
    lambda2_le_lambda1: bool = True
    theta_range: list[float] = field(default_factory=lambda: [0.0, 3.141592653589793])
    iso_prob: float = 0.5  # only for kernel == "mixed"
    # "centered": odd kernel centred on the pixel; "shifted": MANet/CDSR top-left (k-s+1)² kernel
    kernel_layout: Literal["centered", "shifted"] = "centered"
    blur_border: Literal["reflect", "replicate", "circular"] = "reflect"
    downsampler: Literal["bicubic", "sfold"] = "bicubic"
    noise_range: list[float] = field(default_factory=lambda: [0.0, 75.0])  # AWGN σ on the 0–255 scale
    jpeg_prob: float = 0.0
    jpeg_quality_range: list[int] = field(default_factory=lambda: [30, 80])

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in (
            "sigma_range",
            "lambda1_range",
            "lambda2_range",
            "theta_range",
            "noise_range",
            "jpeg_quality_range",
        ):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                out.append((name, f"expected [low, high] with low <= high, got {lo_hi}"))
        if self.kernel_size < 1:
            out.append(("kernel_size", f"must be >= 1, got {self.kernel_size}"))
        if self.kernel_layout == "centered" and self.kernel_size % 2 == 0:
            out.append(("kernel_size", f"a centred kernel needs an odd size, got {self.kernel_size}"))
        for name in ("iso_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                out.append((name, f"is a probability, must be in [0, 1], got {getattr(self, name)}"))
        if self.kernel in ("iso", "mixed") and self.sigma_range[0] <= 0:
            out.append(("sigma_range", f"widths must be > 0, got {self.sigma_range}"))
        if self.noise_range[0] < 0:
            out.append(("noise_range", f"noise levels must be >= 0, got {self.noise_range}"))
        return out


@dataclass
class DataConfig:
    """Where HR images come from and how tasks are cut from them."""

    source: str = "corpus"  # "corpus" (built-in skimage photographs), an image folder, or a shard URI
    val_source: str = "corpus"
    patch_size: int = 48  # LR patch side; HR side = scale · patch_size
    patches_per_task: int = 40  # CMDSR code: 2n (two halves of n = 20); CDSR: 2 (query + key crop)
    tasks_per_step: int = 8  # k: tasks per optimisation step and train worker (was data.task_size)
    augment: bool = True  # flips and 90° rotations (dihedral group) per HR crop
    recursive: bool = True
    # CDSR/DASR MoCo positive pair (CDSR Table 1): the key crop shares the query's image and degradation |
    # comes from another image with the same degradation | the same image with another degradation
    moco_positive: Literal["same", "other_image", "other_degradation"] = "same"
    # how a task row is cut: "task" = CMDSR, n patches of one image sharing one degradation; "pair" = CDSR/DASR,
    # patch 0 is the MoCo query and patches 1.. its keys, made as moco_positive says
    sampler: Literal["task", "pair"] = "task"
    prefetch_batches: int = 2  # batches a train worker fetches ahead (Ray's formatting; on CUDA the copies too)

    def problems(self) -> list[tuple[str, str]]:
        return [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("patch_size", "patches_per_task", "tasks_per_step", "prefetch_batches")
            if getattr(self, k) < 1
        ]


@dataclass
class ModelConfig:
    """Which architecture to build and its hyper-parameters (consumed by ``build_model``).

    ``name`` picks an entry of ``blindsr.models.MODELS``; the other fields are the ablation switches of
    the two papers (CMDSR Tables IV, IX, X; CDSR Tables 3, 4, 5, 10, 11). Fields a model does not use
    are ignored by it.
    """

    name: Literal["srresnet", "vdsr", "idn", "edsr", "cmdsr", "cdsr", "dasr"] = "cmdsr"  # = MODELS' keys
    n_feats: int = 64
    n_blocks: int = 10
    # CMDSR family
    basenet: Literal["srresnet", "vdsr", "idn", "edsr"] = "srresnet"  # the net CMDSR conditions (Table X)
    support_size: int = 20  # n support patches stacked on channels (baked into ConditionNet weights)
    modulation: Literal["scale", "sft"] = "scale"  # depth-wise channel scaling | IKC SFT (Table IX)
    # CDSR family
    encoder: Literal["lpe", "dasr"] = "lpe"  # LPE (pixel + patch branches) | DASR's 6-conv encoder (Table 4)
    use_pixel_branch: bool = True  # LPE pixel-wise branch (Table 3)
    use_patch_branch: bool = True  # LPE patch-wise branch (Table 3)
    use_codebook: bool = True  # CSC codebook attention (Table 3)
    codebook_size: int = 1024  # CSC length (Table 11)
    fusion: Literal["dqa", "adain", "dynconv"] = "dqa"  # how the embedding enters the trunk (Table 5)
    trunk: Literal["rrdb", "dasr"] = "rrdb"  # CDSR's RRDB-SFT trunk | DASR's DA-group trunk (Table 4)
    moco_queue: int = 8192
    moco_momentum: float = 0.999
    moco_temperature: float = 0.07

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("n_feats", "n_blocks", "support_size", "codebook_size", "moco_queue")
            if getattr(self, k) < 1
        ]
        if not (self.use_pixel_branch or self.use_patch_branch):
            out.append(("use_patch_branch", "the LPE encoder needs at least one of the pixel and patch branches"))
        if not 0.0 <= self.moco_momentum < 1.0:
            out.append(("moco_momentum", f"must be in [0, 1), got {self.moco_momentum}"))
        if self.moco_temperature <= 0:
            out.append(("moco_temperature", f"must be > 0, got {self.moco_temperature}"))
        return out


@dataclass
class LossConfig:
    condition_loss: Literal["res", "con", "com"] = "com"  # CMDSR ConditionNet loss: L_res | L_con | L_con+λL_res
    lambda_res: float = 0.1
    contrastive_form: Literal["elementwise", "squared_distance"] = "elementwise"
    weight_l1: float = 1.0
    weight_contrast: float = 1.0


@dataclass
class OptimConfig:
    lr: float = 1e-4
    lr_condition: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=lambda: [500_000, 900_000])
    gamma: float = 0.1
    t0: int = 10  # CMDSR: ConditionNet step every t0 BaseNet steps; 0 = joint (non-alternating)
    pretrain_steps: int = 0  # CDSR/DASR: encoder-only contrastive steps before joint training (CDSR Table 12)
    lr_pretrain: float = 1e-3  # DASR stage-1 learning rate


@dataclass
class TrainConfig:
    steps: int = 1000  # optimisation iterations (one batch of k tasks each)
    val_every: int = 250
    checkpoint_every: int = 250
    keep_best: int = 2  # checkpoints kept, ranked by validation PSNR
    max_failures: int = 1  # worker-group restarts from the last checkpoint
    log_every: int = 10
    storage_path: str | None = None  # None: <project>/outputs/ray (use S3/NFS on a multi-node cluster)
    val_protocol: Literal["auto", "cmdsr", "cdsr9", "bicubic"] = "auto"  # auto: the model family's paper
    val_crop: int = 96  # HR side of the centre crop of each validation image (0: whole image)
    val_images: int = 3
    max_nonfinite: int = 20  # stop after this many NaN/Inf losses in a row
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast of the forward; fp16 (CUDA only) adds loss scaling
    channels_last: bool | None = False  # NHWC weights and activations; None: on when training on CUDA
    compile: bool | None = False  # torch.compile the SR network; None: on when training on CUDA
    ema_decay: float = 0.0  # EMA of the weights (e.g. 0.999) used for validation and registry; 0: off

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("steps", "val_every", "checkpoint_every", "keep_best", "log_every", "val_images", "max_nonfinite")
            if getattr(self, k) < 1
        ]
        out += [
            (k, f"must be >= 0, got {getattr(self, k)}") for k in ("max_failures", "val_crop") if getattr(self, k) < 0
        ]
        if not 0.0 <= self.ema_decay < 1.0:
            out.append(("ema_decay", f"must be in [0, 1) (0: no EMA; typical 0.999), got {self.ema_decay}"))
        return out


@dataclass
class TrackingConfig:
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db
    experiment: str | None = None  # None: one experiment per model family
    register: bool = True
    log_images: bool = True
    retry_every_s: float = 30.0  # after a failed call, skip tracking this long, then try the server again

    def problems(self) -> list[tuple[str, str]]:
        out = [("retry_every_s", f"must be >= 0, got {self.retry_every_s}")] if self.retry_every_s < 0 else []
        if self.tracking_uri and urlsplit(self.tracking_uri).password is not None:  # the config is logged as params
            out.append(
                (
                    "tracking_uri",
                    "must not contain a password (the config is logged with the run); set "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead",
                )
            )
        return out


PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement-group strategies


@dataclass
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool | None = None  # None: use CUDA when available
    cpus_per_worker: float = 1.0
    degrade_actors: int = 1
    degrade_cpus_per_actor: float = 1.0
    degrade_gpu_fraction: float = 0.0  # >0 runs the degradation pipeline on CUDA inside the actors
    placement_strategy: str = "PACK"  # of the train workers: SPREAD puts them on different nodes

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("num_workers", "degrade_actors")
            if getattr(self, k) < 1
        ]
        out += [
            (k, f"must be > 0, got {getattr(self, k)}")
            for k in ("cpus_per_worker", "degrade_cpus_per_actor")
            if not getattr(self, k) > 0
        ]
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            out.append(
                (
                    "placement_strategy",
                    f"must be one of {', '.join(PLACEMENT_STRATEGIES)}, got {self.placement_strategy!r}",
                )
            )
        if not 0.0 <= self.degrade_gpu_fraction <= 1.0:
            out.append(("degrade_gpu_fraction", f"is a GPU share per actor in [0, 1], got {self.degrade_gpu_fraction}"))
        return out


@dataclass
class Config:
    name: str = "blindsr"
    seed: int = 0
    scale: int = 4
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)

    def problems(self) -> list[tuple[str, str]]:
        out = [] if 1 <= self.scale <= 8 else [("scale", f"must be an integer in [1, 8], got {self.scale}")]
        if self.train.precision == "fp16" and self.scaling.use_gpu is False:
            out.append(("train.precision", "fp16 needs CUDA, but scaling.use_gpu is false: use bf16 or fp32"))
        return out


# --------------------------------------------------------------------------------------------------
# dict <-> dataclass with strict checking
# --------------------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _where(origin: str | None) -> str:
    return f" in {origin}" if origin else ""


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if _is_optional(tp):
        return f"{_type_name(_strip_optional(tp))} | None"
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

    if _is_optional(tp):
        if value is None or (isinstance(value, str) and value.strip().lower() in {"none", "null", "~"}):
            return None
        return _coerce(value, _strip_optional(tp), key, origin)
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
        if not isinstance(value, list):
            fail()
        return [_coerce(v, item_tp, f"{key}[{i}]", origin) for i, v in enumerate(value)]
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # a schema bug, not a user error


def _section_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


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
    names = [f.name for f in dataclasses.fields(cls)]
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
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, origin, prefix=f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full, origin)
    obj = cls(**kwargs)
    for key, problem in getattr(obj, "problems", lambda: [])():
        raise ConfigError(f"{prefix}{key}{_where(origin)}: {problem}")
    return obj


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (lists, not tuples) suitable for YAML and for the Ray boundary."""
    return dataclasses.asdict(cfg)


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
    """Overlay a nested partial dict onto ``cfg`` (validated like a fresh load)."""
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


# --------------------------------------------------------------------------------------------------
# Presets (compose, don't inherit)
# --------------------------------------------------------------------------------------------------


def cmdsr_paper() -> Config:
    """CMDSR (TIP 2022) training setting: ×4, 15×15 isotropic σ ∈ {0.2..4.0}, AWGN U[0,75], k=8, n=20."""
    from blindsr.degradations.presets import cmdsr_train

    return Config(
        name="cmdsr_x4",
        scale=4,
        degradation=cmdsr_train(4),
        data=DataConfig(patch_size=48, patches_per_task=40, tasks_per_step=8),
        model=ModelConfig(name="cmdsr", n_blocks=10),
        optim=OptimConfig(lr=1e-4, lr_condition=1e-4, milestones=[500_000, 900_000], gamma=0.1, t0=10),
        train=TrainConfig(steps=1_000_000, val_every=5000, checkpoint_every=5000, channels_last=None, compile=None),
    )


def cdsr_paper(scale: int = 4) -> Config:
    """CDSR (ACM MM 2022): 21×21 anisotropic shifted kernels, s-fold, 32 images × (query, key) crops."""
    from blindsr.degradations.presets import cdsr_train

    return Config(
        name=f"cdsr_x{scale}",
        scale=scale,
        degradation=cdsr_train(scale),
        data=DataConfig(patch_size=48, patches_per_task=2, tasks_per_step=32, sampler="pair"),
        model=ModelConfig(name="cdsr", n_blocks=10),
        loss=LossConfig(weight_l1=1.0, weight_contrast=1.0),
        optim=OptimConfig(lr=1e-4, milestones=[121_250, 242_500, 363_750], gamma=0.5, t0=0),
        train=TrainConfig(steps=485_000, val_every=5000, checkpoint_every=5000, channels_last=None, compile=None),
    )


def preview() -> Config:
    """Small CMDSR-distribution config used by the degradation preview (README main job)."""
    cfg = cmdsr_paper()
    cfg.name = "preview"
    cfg.data.patches_per_task = 4
    return cfg


def cmdsr_demo() -> Config:
    """README-sized CMDSR: ×2, SRResNet-10 width 32, n = 4, 24² patches; minutes on 2 CPU cores."""
    from blindsr.degradations.presets import cmdsr_train

    return Config(
        name="cmdsr_demo",
        scale=2,
        degradation=cmdsr_train(2),
        data=DataConfig(patch_size=24, patches_per_task=8, tasks_per_step=4),
        model=ModelConfig(name="cmdsr", n_feats=32, n_blocks=10, support_size=4),
        optim=OptimConfig(lr=1e-3, lr_condition=1e-4, milestones=[400], gamma=0.5, t0=10),
        train=TrainConfig(steps=500, val_every=100, checkpoint_every=100, log_every=10, val_crop=96),
        scaling=ScalingConfig(num_workers=1, degrade_actors=1),
    )


def cdsr_demo() -> Config:
    """README main job: CDSR ×2 with 2 blocks on the built-in corpus; ≤ 10 minutes on 2 CPU cores."""
    from blindsr.degradations.presets import cdsr_train

    return Config(
        name="cdsr_demo",
        scale=2,
        degradation=cdsr_train(2),
        data=DataConfig(patch_size=24, patches_per_task=2, tasks_per_step=8, sampler="pair"),
        model=ModelConfig(name="cdsr", n_blocks=2, codebook_size=256, moco_queue=512),
        loss=LossConfig(weight_l1=1.0, weight_contrast=1.0),
        optim=OptimConfig(lr=2e-4, milestones=[300], gamma=0.5, t0=0),
        train=TrainConfig(steps=400, val_every=100, checkpoint_every=100, log_every=10, val_crop=96),
        scaling=ScalingConfig(num_workers=1, degrade_actors=1),
    )


def _smoke(cfg: Config) -> Config:
    """Shrink a demo to a sub-minute CPU run with 2 train workers (tests)."""
    cfg.name = cfg.name.replace("_demo", "_smoke")
    cfg.data.patch_size, cfg.data.tasks_per_step = 16, 2
    cfg.model.n_feats = min(cfg.model.n_feats, 16)
    cfg.model.n_blocks = 1
    cfg.model.codebook_size, cfg.model.moco_queue = 32, 32
    cfg.optim.t0 = min(cfg.optim.t0, 2)
    cfg.train = TrainConfig(steps=4, val_every=2, checkpoint_every=2, log_every=1, val_crop=48, val_images=2)
    cfg.scaling = ScalingConfig(num_workers=2, degrade_actors=1, degrade_cpus_per_actor=0.5)
    return cfg


def cmdsr_smoke() -> Config:
    cfg = _smoke(cmdsr_demo())
    cfg.model.support_size, cfg.data.patches_per_task = 2, 4
    return cfg


def cdsr_smoke() -> Config:
    return _smoke(cdsr_demo())


PRESETS: dict[str, typing.Callable[[], Config]] = {
    "cmdsr_paper": cmdsr_paper,
    "cmdsr_demo": cmdsr_demo,
    "cmdsr_smoke": cmdsr_smoke,
    "cdsr_paper": cdsr_paper,
    "cdsr_demo": cdsr_demo,
    "cdsr_smoke": cdsr_smoke,
    "preview": preview,
}


def add_override_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--set KEY=VALUE`` option (repeatable, collected in ``args.overrides``) every job shares."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def build_config(
    preset: str | None = None, config_file: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Preset → YAML file → ``--set`` overrides, in that order; every layer validated."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]() if preset else Config()
    if config_file is not None:
        cfg = load_yaml(config_file, base=cfg)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg
