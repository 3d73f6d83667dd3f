"""Plain ``nn.Module`` architectures (no Ray, no MLflow) and the explicit ``MODELS`` registry.

Every model maps [0, 1] RGB LR (B, 3, h, w) to [0, 1] RGB SR (B, 3, s·h, s·w). Conditional models also
take a support: ``model(lr, support)`` (CMDSR) or read the input itself (CDSR, DASR, CdCL, KDSR's student).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from blindsr.config import ModelConfig
from blindsr.models.cdcl import CdCL
from blindsr.models.cdsr import CDSR
from blindsr.models.cmdsr import CMDSR
from blindsr.models.dasr import DASR
from blindsr.models.edsr import EDSR
from blindsr.models.family import Family, check_family, family_of
from blindsr.models.idn import IDN
from blindsr.models.kdsr import KDSR
from blindsr.models.srresnet import SRResNet
from blindsr.models.vdsr import VDSR


def _srresnet(cfg: ModelConfig, scale: int) -> nn.Module:
    return SRResNet(scale, cfg.n_feats, cfg.n_blocks)


def _vdsr(cfg: ModelConfig, scale: int) -> nn.Module:
    return VDSR(scale, cfg.n_feats)


def _idn(cfg: ModelConfig, scale: int) -> nn.Module:
    return IDN(scale, cfg.n_feats)


def _edsr(cfg: ModelConfig, scale: int) -> nn.Module:
    return EDSR(scale, cfg.n_feats, cfg.n_blocks)


BASENETS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "srresnet": _srresnet,
    "vdsr": _vdsr,
    "idn": _idn,
    "edsr": _edsr,
}


def _cmdsr(cfg: ModelConfig, scale: int) -> nn.Module:
    return CMDSR(BASENETS[cfg.basenet](cfg, scale), cfg.support_size, cfg.modulation)


def _cdsr(cfg: ModelConfig, scale: int) -> nn.Module:
    return CDSR(
        scale,
        cfg.n_feats,
        cfg.n_blocks,
        cfg.encoder,
        cfg.use_pixel_branch,
        cfg.use_patch_branch,
        cfg.use_codebook,
        cfg.codebook_size,
        cfg.fusion,
        cfg.trunk,
        cfg.moco_queue,
        cfg.moco_momentum,
        cfg.moco_temperature,
    )


def _dasr(cfg: ModelConfig, scale: int) -> nn.Module:
    """DASR's fixed 5 DAG × 5 DAB trunk (``n_blocks`` is CDSR's block count and is not used here)."""
    return DASR(
        scale,
        cfg.n_feats,
        moco_queue=cfg.moco_queue,
        moco_momentum=cfg.moco_momentum,
        moco_temperature=cfg.moco_temperature,
    )


def _cdcl(cfg: ModelConfig, scale: int) -> nn.Module:
    """CdCL-S: n_feats 64, 6 groups × 6 blocks (the released code); CdCL-L: 96, 6 × 9. MoCo's momentum and
    temperature are its EMA target's and its contrast's (the official 0.99 and 1.0 in the presets)."""
    return CdCL(scale, cfg.n_feats, cfg.n_groups, cfg.n_blocks, cfg.moco_momentum, cfg.moco_temperature)


def _kdsr(cfg: ModelConfig, scale: int) -> nn.Module:
    """KDSR_S-M: n_feats 64, 53 IDR blocks, 9 encoder ResBlocks; KDSR_S-L: 128, 28, 5."""
    return KDSR(scale, cfg.n_feats, cfg.n_blocks, cfg.encoder_blocks)


MODELS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    **BASENETS,
    "cmdsr": _cmdsr,
    "cdsr": _cdsr,
    "dasr": _dasr,
    "cdcl": _cdcl,
    "kdsr": _kdsr,
}


def build_model(cfg: ModelConfig, scale: int) -> nn.Module:
    """Build the architecture named by ``cfg.name`` at ``scale``; it must have what its family needs
    (``family.check_family``)."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; valid models: {', '.join(MODELS)}")
    return check_family(MODELS[cfg.name](cfg, scale), cfg.name)


__all__ = ["BASENETS", "MODELS", "Family", "build_model", "count_parameters", "family_of"]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (requires_grad), the way the papers count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
