"""Train CDSR (or the DASR baseline: --set model.name=dasr) on Ray Train, tracked in MLflow, then evaluate
the registered model on the built-in validation images with the CDSR 9-kernel protocol (bicubic as the
reference row) and print the table.

    python jobs/train_cdsr.py --preset demo
    ray job submit --working-dir . -- python jobs/train_cdsr.py --preset paper --set scaling.num_workers=8
"""

from __future__ import annotations

import sys

import torch

from blindsr.config import Config
from blindsr.data.sources import load_source
from blindsr.evaluate import evaluate
from blindsr.tracking import load_model, registered_name
from blindsr.train.cli import main
from blindsr.train.launch import TrainOutcome


def evaluate_registered(cfg: Config, outcome: TrainOutcome) -> None:
    if outcome.model_version is None:
        print("no model was registered; skipping the evaluation")
        return
    uri = f"models:/{registered_name(cfg.model.name, cfg.scale)}/{outcome.model_version}"
    model = load_model(uri, cfg.tracking.tracking_uri)
    images = list(load_source(cfg.data.val_source, split="val", min_size=4 * cfg.scale))
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    table = evaluate({uri: model}, "cdsr9", cfg.scale, images, device, crop=256)
    print(table.markdown())


if __name__ == "__main__":
    sys.exit(main("cdsr", __doc__, after=evaluate_registered))
