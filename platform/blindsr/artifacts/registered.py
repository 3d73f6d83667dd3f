"""The registry's model format: a logged model holds the resolved config (``config.yaml``) and the weights
(``model.safetensors``) as pyfunc artifacts named :data:`CONFIG` and :data:`WEIGHTS`, beside MLflow's ``MLmodel``.
It rebuilds with ``build_model`` from those two files: nothing from the store is executed or unpickled. Logging,
downloading and the pyfunc class are MLflow's side, in :mod:`blindsr.tracking`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch import nn

from blindsr.artifacts.checkpoint import MODEL_FILE, rebuild, save_weights
from blindsr.config import Config, save_yaml

WEIGHTS, CONFIG = "weights", "config"  # the model's artifact names


def write(folder: str | Path, model: nn.Module, cfg: Config) -> dict[str, str]:
    """The two files of a model to log, in ``folder``: {artifact name: path}."""
    folder = Path(folder)
    save_yaml(cfg, folder / "config.yaml")
    save_weights(model, folder / MODEL_FILE)
    return {WEIGHTS: str(folder / MODEL_FILE), CONFIG: str(folder / "config.yaml")}


def flavors(folder: str | Path) -> dict[str, Any]:
    """The flavors of a downloaded model folder's ``MLmodel``."""
    return yaml.safe_load((Path(folder) / "MLmodel").read_text())["flavors"]


def pickled(folder: str | Path) -> bool:
    """A version logged before blindsr used safetensors: MLflow's pytorch flavour, a pickled ``nn.Module``."""
    return "pytorch" in flavors(folder)


def read(folder: str | Path) -> nn.Module:
    """The eval-mode model of a downloaded model folder, rebuilt from its config and weights artifacts."""
    files = flavors(folder)["python_function"]["artifacts"]
    return rebuild(Path(folder) / files[CONFIG]["path"], Path(folder) / files[WEIGHTS]["path"])[1]
