"""The typed configuration tree of a blindsr run: dataclasses are the schema, YAML only serialisation.

Each section checks its own values (``problems()``: (key, what is wrong) pairs that ``loading.from_dict`` turns
into a :class:`ConfigError` naming the key and where it came from). No Ray, no MLflow, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from blindsr.config.rules import cross_problems
from blindsr.degradations.config import DegradationConfig
from blindsr.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid; the message says which, where, and what is allowed."""


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
    prefetch_batches: int = 2  # batches copied ahead to the device on CUDA (Ray fetches the next block on any)
    # GB of pool pixels a node holds at once; a larger pool is drawn from in windows (docs/data.md). None: all of it
    pool_memory_gb: float | None = None
    cache_dir: str | None = None  # node-local folder of decoded pools; None: $BLINDSR_CACHE_DIR or <tmp>/blindsr-pool

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("patch_size", "patches_per_task", "tasks_per_step", "prefetch_batches")
            if getattr(self, k) < 1
        ]
        if self.pool_memory_gb is not None and not self.pool_memory_gb > 0:
            out.append(("pool_memory_gb", f"must be > 0 GB (or null: the whole pool), got {self.pool_memory_gb}"))
        return out


@dataclass
class ModelConfig:
    """Which architecture to build and its hyper-parameters (consumed by ``build_model``).

    ``name`` picks an entry of ``blindsr.models.MODELS``; the other fields are the ablation switches of
    the two papers (CMDSR Tables IV, IX, X; CDSR Tables 3, 4, 5, 10, 11). Fields a model does not use
    are ignored by it.
    """

    name: Literal["srresnet", "vdsr", "idn", "edsr", "cmdsr", "cdsr", "dasr", "cdcl", "kdsr"] = "cmdsr"  # MODELS' keys
    n_feats: int = 64
    n_blocks: int = 10
    # CMDSR family
    basenet: Literal["srresnet", "vdsr", "idn", "edsr"] = "srresnet"  # the net CMDSR conditions (Table X)
    support_size: int = 20  # n support patches stacked on channels (baked into ConditionNet weights)
    modulation: Literal["scale", "sft"] = "scale"  # depth-wise channel scaling | IKC SFT (Table IX)
    # CDSR family
    # LPE (pixel + patch branches) | DASR's 6-conv encoder | MANet's kernel estimator (Table 4)
    encoder: Literal["lpe", "dasr", "manet"] = "lpe"
    use_pixel_branch: bool = True  # LPE pixel-wise branch (Table 3); encoder lpe only
    use_patch_branch: bool = True  # LPE patch-wise branch (Table 3); encoder lpe only
    use_codebook: bool = True  # CSC codebook attention (Table 3)
    codebook_size: int = 1024  # CSC length (Table 11)
    fusion: Literal["dqa", "adain", "dynconv"] = "dqa"  # how the embedding enters the trunk (Table 5)
    trunk: Literal["rrdb", "dasr"] = "rrdb"  # CDSR's RRDB-SFT trunk | DASR's DA-group trunk (Table 4)
    moco_queue: int = 8192
    moco_momentum: float = 0.999
    moco_temperature: float = 0.07
    # CdCL: DAGs of n_blocks DaDAUs each (CdCL-S 6 × 6 at n_feats 64, CdCL-L 6 × 9 at 96); MoCo's momentum and
    # temperature are its EMA target's and contrast's (0.99, 1.0)
    n_groups: int = 6
    encoder_blocks: int = 9  # KDSR: ResBlocks per KD-IDE (KDSR_S-M: 9, 53 IDR blocks, 64; S-L: 5, 28, 128)

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 1, got {getattr(self, k)}")
            for k in ("n_feats", "n_blocks", "support_size", "codebook_size", "moco_queue", "n_groups")
            if getattr(self, k) < 1
        ]
        if self.encoder_blocks < 0:
            out.append(("encoder_blocks", f"must be >= 0, got {self.encoder_blocks}"))
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
    weight_kd: float = 1.0  # KDSR: the distillation loss against L1 on [0, 1], as the paper's L1 + L_KD
    kd_temperature: float = 0.15  # KDSR: softmax temperature of both IDRs in the distillation loss
    kd_distance: Literal["kl", "l1"] = "kl"  # KDSR: KL of the tempered softmaxes (the paper's) | L1 of the IDRs

    def problems(self) -> list[tuple[str, str]]:
        out = [("weight_kd", f"must be >= 0, got {self.weight_kd}")] if self.weight_kd < 0 else []
        if not self.kd_temperature > 0:
            out.append(("kd_temperature", f"must be > 0, got {self.kd_temperature}"))
        return out


@dataclass
class OptimConfig:
    lr: float = 1e-4
    lr_condition: float = 1e-4
    optimizer: Literal["adam", "adamw"] = "adam"  # adamw: decoupled weight_decay (CdCL: 0.01)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    # the lr after the first stage: x gamma at each milestone | linear warm-up, then cosine to lr_min (CdCL)
    schedule: Literal["multistep", "cosine"] = "multistep"
    milestones: list[int] = field(default_factory=lambda: [500_000, 900_000])
    gamma: float = 0.1
    warmup_steps: int = 0  # cosine: steps of linear warm-up to lr
    cosine_steps: int = 0  # cosine: steps from lr down to lr_min after the warm-up (then lr_min)
    lr_min: float = 0.0  # cosine: the floor
    t0: int = 10  # CMDSR: ConditionNet step every t0 BaseNet steps; 0 = joint (non-alternating)
    # the first stage of a two-stage family: encoder-only steps (CDSR Table 12, DASR, CdCL), KDSR's teacher
    pretrain_steps: int = 0
    lr_pretrain: float = 1e-3  # DASR stage-1 learning rate
    pretrain_milestones: list[int] = field(default_factory=list)  # stage-1 steps where lr_pretrain ×pretrain_gamma
    pretrain_gamma: float = 0.1  # DASR 0.1 (epoch 60), CdCL 0.2, KDSR's teacher 0.5
    pretrain_shared_optimizer: bool = False  # one Adam for both stages, as DASR's and CDSR's code (else a fresh one)

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 0, got {getattr(self, k)}")
            for k in ("warmup_steps", "cosine_steps", "pretrain_steps", "lr_min")
            if getattr(self, k) < 0
        ]
        bad = [m for m in self.pretrain_milestones if not 0 < m < self.pretrain_steps]
        if bad:
            out.append(("pretrain_milestones", f"must lie in (0, pretrain_steps={self.pretrain_steps}), got {bad}"))
        if self.schedule == "cosine" and self.cosine_steps < 1:
            out.append(("cosine_steps", "must be >= 1 with schedule cosine (the steps it spans after the warm-up)"))
        if self.schedule == "cosine" and self.lr_min >= self.lr:
            out.append(("lr_min", f"must be below lr={self.lr} (the cosine ends at lr_min), got {self.lr_min}"))
        if not 0.0 < self.pretrain_gamma <= 1.0:
            out.append(("pretrain_gamma", f"must be in (0, 1], got {self.pretrain_gamma}"))
        return out


@dataclass
class TrainConfig:
    steps: int = 1000  # optimisation iterations (one batch of k tasks each)
    val_every: int = 250
    checkpoint_every: int = 250
    keep_best: int = 2  # checkpoints kept, ranked by validation PSNR
    max_failures: int = 1  # worker-group restarts from the last checkpoint
    log_every: int = 10
    storage_path: str | None = None  # None: <project>/outputs/ray (use S3/NFS on a multi-node cluster)
    # auto: the model family's paper protocol
    val_protocol: Literal[
        "auto", "cmdsr", "cdsr9", "cdsr9_noise15", "gaussian8", "dasr_iso", "dasr_aniso", "bicubic"
    ] = "auto"
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
    system_metrics_every_s: float = 10.0  # MLflow system metrics of every node (system/<node id>/…); 0: off

    def problems(self) -> list[tuple[str, str]]:
        out = [
            (k, f"must be >= 0, got {getattr(self, k)}")
            for k in ("retry_every_s", "system_metrics_every_s")
            if getattr(self, k) < 0
        ]
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
    # degradation actors; auto: Ray Data grows the pool from 1 while the trainers wait, up to what the CPUs allow
    degrade_actors: int | Literal["auto"] = 1
    degrade_cpus_per_actor: float = 1.0
    degrade_gpu_fraction: float = 0.0  # >0 runs the degradation pipeline on CUDA inside the actors
    # actor: the DegradeWorker actors make LR; trainer: they cut HR windows and the train worker degrades its
    # batch on its own device (data/on_trainer.py; README "Where degradation runs")
    degrade_on: Literal["actor", "trainer"] = "actor"
    placement_strategy: str = "PACK"  # of the train workers: SPREAD puts them on different nodes

    def problems(self) -> list[tuple[str, str]]:
        out = [("num_workers", f"must be >= 1, got {self.num_workers}")] if self.num_workers < 1 else []
        if self.degrade_actors != "auto" and self.degrade_actors < 1:
            out.append(("degrade_actors", f"must be >= 1 or 'auto', got {self.degrade_actors}"))
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
        if self.degrade_on == "trainer" and self.degrade_gpu_fraction > 0:
            out.append(("degrade_gpu_fraction", "GPU actors degrade, but degrade_on: trainer degrades on the trainer"))
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
        return out + cross_problems(self)
