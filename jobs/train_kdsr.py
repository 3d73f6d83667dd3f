"""Train KDSR (KDSR_S-M; --preset large for KDSR_S-L) on Ray Train, tracked in MLflow: the teacher stage (its
encoder sees LR and HR), then the student stage (LR only) distilling the teacher's degradation representation;
then evaluate the registered model on the built-in validation images with Gaussian8 (bicubic as the reference
row), print the table and log it into the run.

    python jobs/train_kdsr.py --preset demo
    ray job submit --working-dir . -- python jobs/train_kdsr.py --preset paper --set scaling.num_workers=8
"""

from __future__ import annotations

import sys

from blindsr.train.cli import main

if __name__ == "__main__":
    sys.exit(main("kdsr", __doc__))
