"""Mixed precision for a training step: autocast around the forward, loss scaling for fp16. No Ray, no MLflow.

``train.precision``: ``fp32`` (no autocast, the papers' numerics), ``bf16`` (autocast on CUDA and CPU, no loss
scaling) or ``fp16`` (autocast plus a ``GradScaler``, CUDA only). Weights, optimiser state and checkpoints stay
fp32; losses, metrics and the MoCo queue are computed in fp32 (the steps cast outputs with :meth:`Precision.fp32`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and (for fp16) loss scaling on ``device``; ``Precision("fp32")`` changes nothing."""

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu") -> None:
        if name not in DTYPES:
            raise ValueError(f"train.precision={name!r} is not one of {', '.join(DTYPES)}")
        self.device = torch.device(device)
        if name == "fp16" and self.device.type != "cuda":
            raise ValueError(
                f"train.precision=fp16 needs a CUDA device, this worker trains on {self.device.type}: "
                "use bf16 (CPU and CUDA) or fp32"
            )
        self.name, self.dtype = name, DTYPES[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Around a model forward: ops run in ``self.dtype`` where autocast allows it."""
        if self.name == "fp32":
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    @staticmethod
    def fp32(x: Any) -> Any:
        """``x`` (a tensor or a tuple of them) with every floating tensor cast to float32, for the losses."""
        if isinstance(x, tuple):
            return tuple(Precision.fp32(v) for v in x)
        return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Step ``optimizers`` on the gradients of one backward (the scaler unscales and skips overflowed steps)."""
        if self.scaler is None:
            for opt in optimizers:
                opt.step()
            return
        for opt in optimizers:
            self.scaler.step(opt)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaler": self.scaler.state_dict() if self.scaler is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the loss scale when the checkpoint was fp16 too (a precision change starts a fresh scale)."""
        if self.scaler is not None and state.get("name") == "fp16" and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
