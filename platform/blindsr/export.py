"""ONNX export of the test-time network, checked against PyTorch with onnxruntime.

Exports exactly what :func:`blindsr.models.inference.conditioned` runs, at batch 1 with dynamic height and width:
plain models and CDSR / DASR as one graph ``lr (1, 3, h, w) → sr (1, 3, s·h, s·w)``; CMDSR as two, ``<name>.onnx``
(``lr``, ``condition (1, 128)`` → ``sr``) and ``<name>.condition.onnx`` (``support (1, n, 3, p, p)`` → condition),
since a graph cannot draw its random self-support crops. Inputs and outputs are float32 in [0, 1]; needs ``pip
install 'blindsr[onnx]'``. No Ray or MLflow here."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blindsr.errors import UserError
from blindsr.models import Family, family_of
from blindsr.models.cmdsr import CONDITION_DIM, SELF_SUPPORT_PATCH, self_support

OPSET = 18
MIN_OPSET = 18  # torch.onnx's dynamo exporter (onnxscript) writes opset 18 and newer
MIN_SIDE = 8  # smallest LR side the dynamic graphs accept (CMDSR's ConditionNet pools by 2)
MAX_SIDE = 8192
TOLERANCE = 1e-4  # max |Δ| between onnxruntime and PyTorch, [0, 1] floats
CHECK_SIZES = ((48, 64), (72, 40))  # two LR sizes of different aspect: the dynamic axes are exercised


class ExportError(UserError, RuntimeError):
    """The ONNX dependencies are missing, the export failed or the graph disagrees with PyTorch."""


class _SR(nn.Module):
    """CDSR / DASR at test time: the encoder embeds the whole LR, the generator super-resolves it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.model.generator(lr, self.model.encoder.embed(lr))


class _ConditionedSR(nn.Module):
    """CMDSR's SR graph: lr (1, 3, h, w) + condition (1, 128) → sr."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.model(lr, condition)


class _Condition(nn.Module):
    """CMDSR's condition graph: support (1, n, 3, p, p) → condition (1, 128)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, support: torch.Tensor) -> torch.Tensor:
        return self.model.condition(support)


@dataclass(frozen=True)
class Graph:
    """One exported graph: the module, example inputs by name, and which input axes are dynamic."""

    suffix: str  # "" for the SR graph, ".condition" for CMDSR's condition graph
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    dynamic: dict[str, dict[int, str]]
    output: str


def graphs(model: nn.Module) -> list[Graph]:
    """The test-time graphs of ``model`` (eval mode, CPU), with (1, 3, 48, 64) example inputs."""
    lr = torch.rand(1, 3, *CHECK_SIZES[0])
    hw = {2: "h", 3: "w"}
    family = family_of(model)
    if family is Family.CONDITIONAL:
        support = self_support(lr, model.support_size, SELF_SUPPORT_PATCH, torch.Generator().manual_seed(0))
        return [
            Graph("", _ConditionedSR(model), {"lr": lr, "condition": torch.rand(1, CONDITION_DIM)}, {"lr": hw}, "sr"),
            Graph(".condition", _Condition(model), {"support": support}, {"support": {3: "p", 4: "p"}}, "condition"),
        ]
    module = _SR(model) if family is Family.CONTRASTIVE else model
    return [Graph("", module, {"lr": lr}, {"lr": hw}, "sr")]


def graph_paths(path: str | Path, model: nn.Module) -> list[Path]:
    """Where :func:`export_onnx` writes the graphs of ``model`` for the SR graph ``path``."""
    path = Path(path)
    return [path.with_name(path.stem + g.suffix + path.suffix) for g in graphs(model)]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(
            f"ONNX export needs onnx, onnxscript and onnxruntime: pip install 'blindsr[onnx]' ({e})"
        ) from e


def _dims(graph: Graph) -> dict[str, dict[int, torch.export.Dim] | None]:
    named: dict[str, torch.export.Dim] = {}
    for axes in graph.dynamic.values():
        for name in axes.values():
            low = 1 if name == "p" else MIN_SIDE  # support crops are min(32, h, w): no lower limit but 1
            named.setdefault(name, torch.export.Dim(name, min=low, max=MAX_SIDE))
    return {k: {a: named[n] for a, n in graph.dynamic[k].items()} if k in graph.dynamic else None for k in graph.inputs}


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET, verbose: bool = False) -> list[Path]:
    """Write the test-time graph(s) of ``model`` next to ``path`` (one self-contained file each) → their paths."""
    _require_onnx()
    model = model.float().cpu().eval()
    paths = graph_paths(path, model)
    for graph, out in zip(graphs(model), paths, strict=True):
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")  # an existing export survives a failed one
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        try:
            with quiet, _quiet_exporter(verbose), torch.no_grad():
                torch.onnx.export(
                    graph.module.eval(),
                    tuple(graph.inputs.values()),
                    str(partial),
                    input_names=list(graph.inputs),
                    output_names=[graph.output],
                    dynamic_shapes=_dims(graph),
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                )
        except Exception as e:  # the exporter raises many types; name the graph and keep the first line
            partial.unlink(missing_ok=True)
            root = e
            while root.__cause__ is not None:  # the exporter wraps the reason in a page of advice
                root = root.__cause__
            first = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
            raise ExportError(f"exporting {type(model).__name__} to {out} failed: {first}") from e
        partial.replace(out)
    return paths


@contextlib.contextmanager
def _quiet_exporter(verbose: bool):
    """The exporter warns per missing torchvision op and per deprecation and prints a line per stage; all of
    that is for --verbose."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_onnx(
    model: nn.Module, path: str | Path, sizes: tuple[tuple[int, int], ...] = CHECK_SIZES, seed: int = 0
) -> float:
    """Max |Δ| between onnxruntime and PyTorch (:func:`blindsr.models.inference.super_resolve`) on random LR images of
    each size; raises :class:`ExportError` above :data:`TOLERANCE`."""
    _require_onnx()
    import onnxruntime as ort

    from blindsr.models.inference import super_resolve

    model = model.float().cpu().eval()
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in graph_paths(path, model)]
    worst = 0.0
    for i, (h, w) in enumerate(sizes):
        lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed + i))
        ref = super_resolve(model, lr, seed=seed).numpy()
        got = run_onnx(sessions, model, lr.numpy(), seed)
        if got.shape != ref.shape:
            raise ExportError(f"{path}: ONNX output {got.shape} for input {lr.shape}, PyTorch gives {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > TOLERANCE:
        raise ExportError(f"{path}: onnxruntime differs from PyTorch by max |Δ| {worst:.2e} > {TOLERANCE:g}")
    return worst


def run_onnx(sessions: list, model: nn.Module, lr: np.ndarray, seed: int = 0) -> np.ndarray:
    """SR (1, 3, s·h, s·w) of lr (1, 3, h, w) with onnxruntime sessions of :func:`graph_paths` order. For
    CMDSR the support is drawn like :func:`blindsr.models.inference.conditioned` with the same ``seed``."""
    if len(sessions) == 1:
        return sessions[0].run(None, {"lr": lr})[0]
    support = self_support(
        torch.from_numpy(lr), model.support_size, SELF_SUPPORT_PATCH, torch.Generator().manual_seed(seed)
    )
    condition = sessions[1].run(None, {"support": support.numpy()})[0]
    return sessions[0].run(None, {"lr": lr, "condition": condition})[0]
