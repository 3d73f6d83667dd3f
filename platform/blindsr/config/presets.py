"""Run presets: plain functions returning a modified default :class:`Config` (compose, don't inherit).

``paper`` (each paper's scale, batch, patch size, schedule and iterations, as its text says), ``code`` (the
official implementation's settings where they differ from the text: CMDSR's ``cmdsr_code``, DASR's
``dasr_code``), ``demo`` (minutes on a laptop, visibly learns), ``smoke`` (seconds; the tests) and ``preview``
(the degradation preview). The jobs name them without the paper prefix (``--preset paper``).
"""

from __future__ import annotations

import typing

from blindsr.config.schema import (
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ScalingConfig,
    TrainConfig,
)
from blindsr.degradations.presets import cdsr_train, cmdsr_code_train, cmdsr_train, dasr_iso, dasr_iso_code


def paper_scaling() -> ScalingConfig:
    """The papers' runs: as many degradation actors as keep the trainers fed (``scaling.degrade_actors: auto``)."""
    return ScalingConfig(degrade_actors="auto")


def cmdsr_paper() -> Config:
    """CMDSR (TIP 2022) training setting: ×4, 15×15 isotropic σ ∈ {0.2..4.0}, AWGN U[0,75], k=8, n=20; the
    BaseNet learns at 1e-3 and the ConditionNet at 1e-4, as the paper's §IV-A says."""
    return Config(
        name="cmdsr_x4",
        scale=4,
        degradation=cmdsr_train(4),
        data=DataConfig(patch_size=48, patches_per_task=40, tasks_per_step=8),
        model=ModelConfig(name="cmdsr", n_blocks=10),
        optim=OptimConfig(lr=1e-3, lr_condition=1e-4, milestones=[500_000, 900_000], gamma=0.1, t0=10),
        train=TrainConfig(steps=1_000_000, val_every=5000, checkpoint_every=5000, channels_last=None, compile=None),
        scaling=paper_scaling(),
    )


def cmdsr_code() -> Config:
    """``cmdsr_paper`` as the official code trains it: its LR synthesis (:func:`cmdsr_code_train`: OpenCV blur and
    cubic, σ up to 4, integer noise levels, floored) and 1e-4 for both networks."""
    cfg = cmdsr_paper()
    cfg.name, cfg.degradation, cfg.optim.lr = "cmdsr_code_x4", cmdsr_code_train(4), 1e-4
    return cfg


def dasr_paper(scale: int = 4) -> Config:
    """DASR (CVPR 2021), isotropic ×4: 32 images × 2 crops of 48², MoCo K = 8192; 100 epochs (97,000 steps) of
    encoder-only InfoNCE at 1e-3 (1e-4 from epoch 60), then 500 epochs (485,000 steps) of L1 + InfoNCE at 1e-4
    halved every 125, one Adam throughout (970 steps per epoch)."""
    return Config(
        name=f"dasr_x{scale}",
        scale=scale,
        degradation=dasr_iso(scale),
        data=DataConfig(patch_size=48, patches_per_task=2, tasks_per_step=32, sampler="pair"),
        model=ModelConfig(name="dasr"),
        loss=LossConfig(weight_l1=1.0, weight_contrast=1.0),
        optim=OptimConfig(
            lr=1e-4,
            lr_pretrain=1e-3,
            pretrain_steps=97_000,
            pretrain_milestones=[58_200],
            pretrain_shared_optimizer=True,
            milestones=[121_250, 242_500, 363_750],
            gamma=0.5,
            t0=0,
        ),
        train=TrainConfig(steps=582_000, val_every=5000, checkpoint_every=5000, channels_last=None, compile=None),
        scaling=paper_scaling(),
    )


def dasr_code(scale: int = 4) -> Config:
    """``dasr_paper`` with the official code's σ range: U(0.2, 4.0) at every scale (``sig_max=4.0``)."""
    cfg = dasr_paper(scale)
    cfg.name, cfg.degradation = f"dasr_code_x{scale}", dasr_iso_code(scale)
    return cfg


def cdsr_paper(scale: int = 4) -> Config:
    """CDSR (ACM MM 2022): 21×21 anisotropic shifted kernels, s-fold, 32 images × (query, key) crops."""
    return Config(
        name=f"cdsr_x{scale}",
        scale=scale,
        degradation=cdsr_train(scale),
        data=DataConfig(patch_size=48, patches_per_task=2, tasks_per_step=32, sampler="pair"),
        model=ModelConfig(name="cdsr", n_blocks=10),
        loss=LossConfig(weight_l1=1.0, weight_contrast=1.0),
        optim=OptimConfig(lr=1e-4, milestones=[121_250, 242_500, 363_750], gamma=0.5, t0=0),
        train=TrainConfig(steps=485_000, val_every=5000, checkpoint_every=5000, channels_last=None, compile=None),
        scaling=paper_scaling(),
    )


CDCL_EPOCH = 970  # iterations per epoch of DASR's code base at batch 32 (CdCL's: 971 at 64, the last one partial)


def cdcl_paper(scale: int = 4) -> Config:
    """CdCL (TIP 2025) setting 1, CdCL-S as its code trains it (``main.sh``, ``option.py``, ``trainer.py``): σ ~ U(0.2,
    4.0), 64 tasks × 4 crops of 64² sharing one degradation (the query's own image and another: ``other_image``),
    one AdamW (weight decay 0.01); 100 epochs of encoder-only contrast at 1e-3 (×0.2 from epoch 60), then 600
    epochs of L1 + contrast: 5 epochs of warm-up to 2e-4, then cosine to 1e-6 (per step here, per epoch there)."""
    e = CDCL_EPOCH
    return Config(
        name=f"cdcl_x{scale}",
        scale=scale,
        degradation=dasr_iso_code(scale),
        data=DataConfig(
            patch_size=64, patches_per_task=4, tasks_per_step=64, sampler="pair", moco_positive="other_image"
        ),
        model=ModelConfig(name="cdcl", n_feats=64, n_groups=6, n_blocks=6, moco_momentum=0.99, moco_temperature=1.0),
        loss=LossConfig(weight_l1=1.0, weight_contrast=1.0),
        optim=OptimConfig(
            optimizer="adamw",
            weight_decay=0.01,
            lr=2e-4,
            schedule="cosine",
            warmup_steps=5 * e,
            cosine_steps=595 * e,
            lr_min=1e-6,
            pretrain_steps=100 * e,
            lr_pretrain=1e-3,
            pretrain_milestones=[59 * e],
            pretrain_gamma=0.2,
            pretrain_shared_optimizer=True,
        ),
        train=TrainConfig(
            steps=700 * e,
            val_every=5000,
            checkpoint_every=5000,
            val_protocol="dasr_iso",
            channels_last=None,
            compile=None,
        ),
        scaling=paper_scaling(),
    )


def cdcl_large(scale: int = 4) -> Config:
    """``cdcl_paper`` with CdCL-L: 96 features, 6 groups × 9 DaDAUs (5,912,201 parameters at ×4; Table III: 5.91M)."""
    cfg = cdcl_paper(scale)
    cfg.name, cfg.model.n_feats, cfg.model.n_blocks = f"cdcl_l_x{scale}", 96, 9
    return cfg


KDSR_EPOCH = 1000  # iterations per epoch of KDSR's data loader (batch × test_every patches)


def kdsr_paper(scale: int = 4) -> Config:
    """KDSR_S-M (ICLR 2023), isotropic (``main_iso_KDSRsMx4_stage3/4.sh``): σ ~ U(0.2, 4.0), 64 crops of 64² a step,
    one degradation each. Teacher stage: 500 epochs of L1 at 1e-4, halved from epochs 125, 250, 375, 500; student
    stage: a fresh Adam, 600 epochs of L1 + KD (T = 0.15) at 1e-4, halved from epochs 150, 300, 450, 600 (the
    official ``epoch // step`` with 1-based epochs). Table 1 evaluates on Gaussian8. DF2K: ``data.source``."""
    e = KDSR_EPOCH
    return Config(
        name=f"kdsr_x{scale}",
        scale=scale,
        degradation=dasr_iso_code(scale),
        data=DataConfig(patch_size=64, patches_per_task=1, tasks_per_step=64, sampler="task"),
        model=ModelConfig(name="kdsr", n_feats=64, n_blocks=53, encoder_blocks=9),
        loss=LossConfig(weight_l1=1.0, weight_kd=1.0, kd_temperature=0.15),
        optim=OptimConfig(
            lr=1e-4,
            milestones=[149 * e, 299 * e, 449 * e, 599 * e],
            gamma=0.5,
            pretrain_steps=500 * e,
            lr_pretrain=1e-4,
            pretrain_milestones=[124 * e, 249 * e, 374 * e, 499 * e],
            pretrain_gamma=0.5,
            t0=0,
        ),
        train=TrainConfig(
            steps=1100 * e,
            val_every=5000,
            checkpoint_every=5000,
            val_protocol="gaussian8",
            channels_last=None,
            compile=None,
        ),
        scaling=paper_scaling(),
    )


def kdsr_large(scale: int = 4) -> Config:
    """``kdsr_paper`` with KDSR_S-L: 128 features, 28 IDR blocks, 5 encoder ResBlocks (14,190,979 parameters)."""
    cfg = kdsr_paper(scale)
    cfg.name, cfg.model.n_feats, cfg.model.n_blocks, cfg.model.encoder_blocks = f"kdsr_l_x{scale}", 128, 28, 5
    return cfg


def preview() -> Config:
    """Small CMDSR-distribution config used by the degradation preview (README main job)."""
    cfg = cmdsr_paper()
    cfg.name = "preview"
    cfg.data.patches_per_task, cfg.model.support_size = 4, 2  # CMDSR's 2n patches a task
    return cfg


def _demo(cfg: Config, steps: int) -> Config:
    """Shrink a paper preset to a README-sized run, minutes on 2 CPU cores: named ``<family>_demo``, LR patches of
    24², ``steps`` steps validated and checkpointed every 100, eager NCHW (the CPU's defaults), one train worker and
    one degradation actor. Each demo then shrinks its own model, batch and schedule, and runs at ×2."""
    cfg.name = f"{cfg.model.name}_demo"
    cfg.data.patch_size = 24
    t = cfg.train
    t.steps, t.val_every, t.checkpoint_every, t.channels_last, t.compile = steps, 100, 100, False, False
    cfg.scaling = ScalingConfig(num_workers=1, degrade_actors=1)
    return cfg


def cmdsr_demo() -> Config:
    """README-sized CMDSR: ×2, SRResNet-10 width 32, n = 4, 24² patches, 2000 steps; ~17 minutes on 2 CPU cores.

    4× the paper's learning rates and an EMA of the weights (decay 0.99) take it past bicubic; 2000 steps, not
    500, past it on whole photographs too (docs/cmdsr_demo_photos.md). The paper preset keeps the paper's rates."""
    cfg = _demo(cmdsr_paper(), steps=2000)
    cfg.scale, cfg.degradation = 2, cmdsr_train(2)
    cfg.data.patches_per_task, cfg.data.tasks_per_step = 8, 4
    cfg.model.n_feats, cfg.model.support_size = 32, 4
    o = cfg.optim
    o.lr, o.lr_condition, o.milestones, o.gamma = 4e-3, 4e-4, [1600], 0.5
    cfg.train.ema_decay = 0.99
    return cfg


def cdsr_demo() -> Config:
    """README main job: CDSR ×2 with 2 blocks, 8 tasks a step, a 256-entry codebook and a 512-key queue on the
    built-in corpus; ≤ 10 minutes on 2 CPU cores. 5e-4 on a cosine to 1e-5 after 10 warm-up steps: the paper's
    halvings leave a 400-step run under bicubic on DASR's isotropic σ (docs/leaderboard.md)."""
    cfg = _demo(cdsr_paper(2), steps=400)
    cfg.data.tasks_per_step = 8
    cfg.model.n_blocks, cfg.model.codebook_size, cfg.model.moco_queue = 2, 256, 512
    o = cfg.optim
    o.lr, o.milestones, o.schedule, o.warmup_steps, o.cosine_steps, o.lr_min = 5e-4, [], "cosine", 10, 390, 1e-5
    return cfg


def cdcl_demo() -> Config:
    """README-sized CdCL: ×2, 32 features, 2 groups × 2 DaDAUs, 8 tasks × 3 crops of 24²; minutes on 2 CPU cores.
    The paper's two stages and schedule, shortened: 50 encoder steps, then 450 of L1 + contrast at 1e-3."""
    cfg = _demo(cdcl_paper(2), steps=500)
    cfg.degradation = dasr_iso(2)  # the paper's ×2 σ range; the code's (cdcl_paper) reaches 4.0
    cfg.data.patches_per_task, cfg.data.tasks_per_step = 3, 8
    cfg.model.n_feats, cfg.model.n_groups, cfg.model.n_blocks = 32, 2, 2
    o = cfg.optim
    o.lr, o.warmup_steps, o.cosine_steps, o.lr_min = 1e-3, 10, 440, 1e-5
    o.pretrain_steps, o.pretrain_milestones = 50, [30]
    return cfg


def kdsr_demo() -> Config:
    """README-sized KDSR: ×2, 32 features, 8 IDR blocks, 2 encoder ResBlocks, 16 crops of 24² a step; the paper's
    two stages shortened: 150 teacher steps at 1e-3 (halved at 100), then 250 student steps from 1e-3 on a cosine to
    1e-5 (the paper's halvings left the validation PSNR swinging ±1.7 dB from one checkpoint to the next)."""
    cfg = _demo(kdsr_paper(2), steps=400)
    cfg.degradation = dasr_iso(2)  # the paper's ×2 σ range; the code's (kdsr_paper) reaches 4.0
    cfg.data.tasks_per_step = 16
    cfg.model.n_feats, cfg.model.n_blocks, cfg.model.encoder_blocks = 32, 8, 2
    o = cfg.optim
    o.lr_pretrain, o.pretrain_steps, o.pretrain_milestones = 1e-3, 150, [100]
    o.lr, o.milestones, o.schedule, o.warmup_steps, o.cosine_steps, o.lr_min = 1e-3, [], "cosine", 0, 250, 1e-5
    return cfg


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


def cdcl_smoke() -> Config:
    """Both stages in 4 steps: 2 encoder steps, 2 joint."""
    cfg = _smoke(cdcl_demo())
    cfg.model.n_groups, cfg.train.val_protocol = 1, "dasr_iso"
    o = cfg.optim
    o.pretrain_steps, o.pretrain_milestones, o.warmup_steps, o.cosine_steps = 2, [1], 1, 1
    return cfg


def kdsr_smoke() -> Config:
    """Both stages in 4 steps: 2 teacher steps, 2 student steps."""
    cfg = _smoke(kdsr_demo())
    cfg.model.encoder_blocks, cfg.train.val_protocol = 1, "gaussian8"
    cfg.optim.pretrain_steps, cfg.optim.pretrain_milestones = 2, [1]
    return cfg


PRESETS: dict[str, typing.Callable[[], Config]] = {
    "cmdsr_paper": cmdsr_paper,
    "cmdsr_code": cmdsr_code,
    "cmdsr_demo": cmdsr_demo,
    "cmdsr_smoke": cmdsr_smoke,
    "cdsr_paper": cdsr_paper,
    "cdsr_demo": cdsr_demo,
    "cdsr_smoke": cdsr_smoke,
    "dasr_paper": dasr_paper,
    "dasr_code": dasr_code,
    "cdcl_paper": cdcl_paper,
    "cdcl_large": cdcl_large,
    "cdcl_demo": cdcl_demo,
    "cdcl_smoke": cdcl_smoke,
    "kdsr_paper": kdsr_paper,
    "kdsr_large": kdsr_large,
    "kdsr_demo": kdsr_demo,
    "kdsr_smoke": kdsr_smoke,
    "preview": preview,
}
