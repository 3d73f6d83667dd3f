"""Train CDSR (or the DASR baseline: --set model.name=dasr) on Ray Train, tracked in MLflow, then evaluate
the registered model on the built-in validation images with the CDSR 9-kernel protocol (bicubic as the
reference row), print the table and log it into the run.

    python jobs/train_cdsr.py --preset demo
    ray job submit --working-dir . -- python jobs/train_cdsr.py --preset paper --set scaling.num_workers=8
"""

from __future__ import annotations

import sys

from blindsr.train.cli import main

if __name__ == "__main__":
    sys.exit(main("cdsr", __doc__))
