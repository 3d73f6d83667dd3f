#!/usr/bin/env bash
# The demo leaderboard (docs/leaderboard.md): CMDSR, CDSR, DASR, CdCL and KDSR at their demo presets on the built-in
# corpus, SEEDS seeds each (default 3), in their own MLflow store, then jobs/leaderboard.py on the corpus val
# images and on photographs that installed packages ship (outside the corpus), and those per photograph. All five
# train on one distribution, DASR's isotropic ×2 (what both protocols test), as the papers' comparisons do.
# Usage: [SEEDS=3] [FIRST_SEED=0] bash benchmarks/demo_leaderboard.sh [OUT_DIR]   (~30 minutes a seed on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-3}
FIRST_SEED=${FIRST_SEED:-0}  # seeds FIRST_SEED … SEEDS−1 (0: the presets' own); to add seeds to a store
OUT=${1:-outputs/demo_leaderboard}
mkdir -p "$OUT"
STORE="sqlite:///$(realpath "$OUT")/mlflow.db"
OUTSIDE="$OUT/outside"
$PY - "$OUTSIDE" <<'EOF'
"""Six photographs that installed packages ship and the corpus does not hold: scikit-image, scikit-learn, matplotlib."""
import sys
from pathlib import Path
import matplotlib, skimage, sklearn.datasets
from PIL import Image
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
files = [Path(skimage.data.__file__).parent / f for f in ("cell.png", "page.png", "motorcycle_right.png")]
files += [Path(sklearn.datasets.__file__).parent / "images" / f for f in ("china.jpg", "flower.jpg")]
files += [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
for f in files:
    Image.open(f).convert("RGB").save(out / f"{f.stem}.png")
EOF
run() {  # run JOB PRESET NAME SEED [--set k=v ...]
  local job=$1 preset=$2 name=$3 seed=$4; shift 4
  $PY "jobs/$job" --preset "$preset" --name "${name}_s$seed" --set "seed=$seed" \
    --set degradation=dasr_iso --set "tracking.tracking_uri=$STORE" --set "train.storage_path=$(realpath "$OUT")/ray" "$@"
}
for seed in $(seq "$FIRST_SEED" $((SEEDS - 1))); do
  run train_cmdsr.py demo cmdsr_demo "$seed"
  run train_cdsr.py demo cdsr_demo "$seed"
  run train_cdsr.py demo dasr_demo "$seed" --set model.name=dasr
  run train_cdcl.py demo cdcl_demo "$seed"
  run train_kdsr.py demo kdsr_demo "$seed"
done
$PY jobs/leaderboard.py --tracking-uri "$STORE" --protocol gaussian8 dasr_iso --set-dir "outside=$OUTSIDE" \
  --out docs/leaderboard.md
# per photograph, the last seed's version of each family beside bicubic (per_image.csv)
$PY jobs/evaluate.py models:/{cmdsr,cdsr,dasr,cdcl,kdsr}_x2/"$SEEDS" --tracking-uri "$STORE" --protocol gaussian8 \
  --images "$OUTSIDE" --per-image --cache '' --out "$OUT/per_image"
