"""Plain ``nn.Module`` architectures (no Ray, no MLflow) and the explicit ``MODELS`` registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from blindsr.config import ModelConfig
from blindsr.models.cmdsr import CMDSR
from blindsr.models.srresnet import SRResNet


def _cmdsr(cfg: ModelConfig, scale: int) -> nn.Module:
    return CMDSR(scale, cfg.n_feats, cfg.n_blocks, cfg.support_size)


def _srresnet(cfg: ModelConfig, scale: int) -> nn.Module:
    return SRResNet(scale, cfg.n_feats, cfg.n_blocks)


MODELS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "cmdsr": _cmdsr,
    "srresnet": _srresnet,
}


def build_model(cfg: ModelConfig, scale: int) -> nn.Module:
    """Build the architecture named by ``cfg.name`` at ``scale``."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; valid models: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg, scale)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (requires_grad), the way the papers count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
