"""Layout and compilation of the model a worker trains: ``train.channels_last`` and ``train.compile``.

Both take ``true``, ``false`` or ``null`` (on for CUDA, off for CPU). ``channels_last`` converts the model to NHWC;
``compile`` wraps the SR network's forward (``models.family.sr_network``) in ``torch.compile``, falling back to
eager with one logged reason if it does not compile. State-dict keys do not change. No Ray, no MLflow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from blindsr.config import TrainConfig
from blindsr.models.family import sr_network

log = logging.getLogger(__name__)


def wanted(flag: bool | None, device: torch.device | str) -> bool:
    """``train.channels_last`` / ``train.compile`` resolved on ``device`` (None: only on CUDA)."""
    return torch.device(device).type == "cuda" if flag is None else flag


def compile_forward(module: nn.Module, name: str, **options: Any) -> None:
    """Replace ``module.forward`` by its ``torch.compile``d version, falling back to eager (once, logged)
    when compilation fails. ``del module.forward`` undoes it."""
    eager: Callable[..., Any] = type(module).forward.__get__(module)
    compiled: Callable[..., Any] | None = torch.compile(eager, **options)

    def forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal compiled
        if compiled is not None:
            try:
                return compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as e:  # before any output exists: eager is safe
                log.warning("train.compile: %s runs eagerly, torch.compile failed: %s", name, _reason(e))
                compiled = None
        return eager(*args, **kwargs)

    module.forward = forward  # an instance attribute: nn.Module.__call__ finds it before the class's


def _reason(e: BaseException) -> str:
    """The root cause of a compile failure in one line (dynamo wraps the backend's exception)."""
    root = getattr(e, "inner_exception", None) or e.__cause__ or e
    text = str(root).strip()
    return f"{type(root).__name__}: {text.splitlines()[0]}" if text else type(root).__name__


def accelerate(model: nn.Module, cfg: TrainConfig, device: torch.device | str) -> list[str]:
    """Apply ``cfg.channels_last`` and ``cfg.compile`` to ``model`` (in place) for training on ``device``;
    returns what was turned on, for the log."""
    done = []
    if wanted(cfg.channels_last, device):
        model.to(memory_format=torch.channels_last)
        done.append("channels_last")
    if wanted(cfg.compile, device):
        target = sr_network(model)
        name = type(target).__name__
        compile_forward(target, name)
        done.append(f"torch.compile({name})")
    return done
