"""The pyfunc "model from code" (``pyfunc_entry.py``) of the registry's format (``blindsr.artifacts.registered``):
no pickle anywhere, so a server with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` serves it (``blindsr.infer.load``
does not even run it: it rebuilds from the two files itself).

``mlflow.pyfunc.load_model(uri).predict(x)``: x (B, 3, h, w) float32 in [0, 1] → (B, 3, s·h, s·w), each image
conditioned on itself (CMDSR: its self-support; CDSR/DASR: its own degradation embedding), as ``upscale`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import torch

ENTRY = Path(__file__).with_name("pyfunc_entry.py")


class SRModel(mlflow.pyfunc.PythonModel):
    """A blindsr network behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        from blindsr.artifacts.checkpoint import rebuild
        from blindsr.artifacts.registered import CONFIG, WEIGHTS

        _, self.net = rebuild(context.artifacts[CONFIG], context.artifacts[WEIGHTS])

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        from blindsr.models.inference import super_resolve

        x = torch.from_numpy(np.ascontiguousarray(model_input, dtype=np.float32))
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, h, w) float32 array in [0, 1], got shape {tuple(x.shape)}")
        return torch.cat([super_resolve(self.net, x[i : i + 1]) for i in range(len(x))]).numpy()
