#!/usr/bin/env bash
# The prepared GPU check: one script, under 8 minutes on one GPU, its results in the folder it is given.
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# Four sections, each with its own time limit, log (OUT_DIR/<section>.log) and a line in OUT_DIR/summary.md:
#   gpu_tests    pytest -m gpu: CUDA vs CPU degradation equality, the bf16/fp16 step with EMA, channels_last and
#                torch.compile, CDSR's training forward on CUDA
#   degradation  benchmarks/degradation.py --device cuda (batched torch vs the naive per-patch path)
#   throughput   benchmarks/train_throughput.py on CUDA at the papers' batches (OUT_DIR/throughput.json)
#   ray_train    jobs/train_cdsr.py --preset paper, 300 steps in bf16 through Ray Train on the GPU
# Without CUDA (CI, a laptop) the same four run at tiny sizes on the CPU, the Ray job beside the other three: the
# fallback a test runs, so the script never rots. The figures belong in docs/performance.md with the date, the GPU
# and these commands.
#
# Python: $PYTHON, else .venv/bin/python when present, else python3; the package is used from platform/
# (no install needed). A bare GPU image may lack packages: wheels put in .whl/ are installed to /tmp/site
# first, and a section whose imports are missing is SKIPPED with their names instead of failing.
# The training run tracks to a temporary SQLite database and Ray storage, removed at the end.
# Exit status: 0 when no section failed (skips allowed), 1 otherwise.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
mkdir -p "$out" && out=$(cd "$out" && pwd)
py=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root/platform${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
work=$(mktemp -d)  # the training run's MLflow database and Ray storage: never the project's own
summary=$out/summary.md
rows=$work/rows  # one summary row per section, joined in order at the end
mkdir -p "$rows"

if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  mode=cuda
else
  mode=cpu
fi
{
  echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), mode $mode"
  echo
  echo '```'
  "$py" -c 'import torch; print("torch", torch.__version__, "| cuda", torch.version.cuda,
    "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPU cores"
  echo '```'
  echo
  echo "| section | result | seconds | command |"
  echo "|---|---|---|---|"
} >"$summary"

missing() {  # the modules among "$@" that do not import
  "$py" - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

section() {  # section NAME LIMIT_S "MODULES" COMMAND...: its summary row goes to $rows/NAME
  local name=$1 limit=$2 needs=$3 start rc result lacking
  shift 3
  lacking=$(missing $needs)
  if [ -n "$lacking" ]; then
    echo "| $name | SKIPPED (missing: $lacking) | 0 | \`$*\` |" >"$rows/$name"
    echo "$name: SKIPPED, missing $lacking"
    return
  fi
  echo "$name: running (at most ${limit}s): $*"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  case $rc in
    0) result=PASS ;;
    124 | 137) result="TIMEOUT after ${limit}s" ;;
    *) result="FAIL (exit $rc)" ;;
  esac
  echo "| $name | $result | $(($(date +%s) - start)) | \`$*\` |" >"$rows/$name"
  echo "$name: $result"
  tail -n 25 "$out/$name.log"
}

gpu_files=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')
if [ "$mode" = cuda ]; then
  section gpu_tests 100 "pytest numpy scipy safetensors yaml" \
    "$py" -m pytest -q -p no:cacheprovider -m gpu $gpu_files
  section degradation 45 "numpy scipy" "$py" benchmarks/degradation.py --device cuda --tasks 30
  section throughput 220 "numpy yaml safetensors albumentations" \
    "$py" benchmarks/train_throughput.py --device cuda --steps 15 --stream-steps 0 --json "$out/throughput.json"
  section ray_train 130 "ray mlflow albumentations" \
    "$py" jobs/train_cdsr.py --preset paper --set train.steps=300 --set train.precision=bf16 \
    --set scaling.degrade_actors=$(($(nproc) > 4 ? $(nproc) - 4 : 1)) \
    --set tracking.tracking_uri="sqlite:///$work/mlflow.db" --set train.storage_path="$work/ray"
else  # tiny sizes; the Ray job mostly waits on process start-ups, so the other three run beside it
  section ray_train 240 "ray mlflow albumentations" \
    "$py" jobs/train_cdsr.py --preset smoke --set train.steps=2 --set train.precision=bf16 \
    --set scaling.num_workers=1 \
    --set tracking.tracking_uri="sqlite:///$work/mlflow.db" --set train.storage_path="$work/ray" &
  section gpu_tests 100 "pytest numpy scipy safetensors yaml" \
    "$py" -m pytest -q -p no:cacheprovider -m gpu $gpu_files
  section degradation 60 "numpy scipy" "$py" benchmarks/degradation.py --device cpu --tasks 2
  section throughput 120 "numpy yaml safetensors albumentations" \
    "$py" benchmarks/train_throughput.py --device cpu --tiny --models cdsr --stream-steps 0 --json "$out/throughput.json"
  wait
fi
for name in gpu_tests degradation throughput ray_train; do
  cat "$rows/$name" >>"$summary"
done
failed=$(grep -cE '^\| [a-z_]+ \| (FAIL|TIMEOUT)' "$summary")
rm -rf "$work"
echo
cat "$summary"
[ "$failed" = 0 ]
