"""Train CdCL (CdCL-S; --preset large for CdCL-L) on Ray Train, tracked in MLflow: its encoder stage, then L1 +
contrast; then evaluate the registered model on the built-in validation images with DASR's isotropic protocol
(bicubic as the reference row), print the table and log it into the run.

    python jobs/train_cdcl.py --preset demo
    ray job submit --working-dir . -- python jobs/train_cdcl.py --preset paper --set scaling.num_workers=8
"""

from __future__ import annotations

import sys

from blindsr.train.cli import main

if __name__ == "__main__":
    sys.exit(main("cdcl", __doc__))
