#!/usr/bin/env bash
# The prepared GPU check: one script, under 10 minutes on one GPU, its results in the folder it is given.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [KIT_DIR]
#
# KIT_DIR (or $GPU_KIT): wheels from benchmarks/gpu_kit.sh (Ray, MLflow, albumentations for a bare GPU image),
# installed first with no network into a temporary folder put on PYTHONPATH; OUT_DIR/kit.log has pip's output and
# `pip check` against the image's own packages. docs/performance.md gives the device call that carries one.
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
# (no install needed). A section whose imports are missing is SKIPPED with their names instead of failing.
# The training run tracks to a temporary SQLite database and Ray storage, removed at the end; summary.md is
# rewritten after every section, so a run cut short still leaves the rows it finished.
# Exit status: 0 when nothing failed (skips allowed), 1 otherwise.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [KIT_DIR]}
kit=${2:-${GPU_KIT:-}}
[ -z "$kit" ] || kit=$(cd "$kit" && pwd) || exit 1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
mkdir -p "$out" && out=$(cd "$out" && pwd)
py=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
work=$(mktemp -d)  # the kit's install, the training run's MLflow database and Ray storage: never the project's own
summary=$out/summary.md
rows=$work/rows  # one summary row per section, joined in order into summary.md
mkdir -p "$rows"
if [ -n "$kit" ]; then
  start=$(date +%s)
  install=("$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check
    --target "$work/site" "$kit"/*.whl)
  if "${install[@]}" >"$out/kit.log" 2>&1; then
    result="PASS ($(ls "$kit"/*.whl | wc -l) wheels)"
    export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
    # bytecode once, on every core: else each Ray process compiles the modules it imports (2x the fallback's CPU)
    "$py" -m compileall -q -j 0 "$work/site" >/dev/null 2>&1
  else
    result="FAIL (pip exit $?)"
  fi
  echo "| kit | $result | $(($(date +%s) - start)) | \`pip install --no-index --no-deps $kit/*.whl\` |" >"$rows/kit"
  echo "kit: $result"
  { echo "--- pip check (the kit against the image's packages)"; "$py" -m pip check; } >>"$out/kit.log" 2>&1
  tail -n 12 "$out/kit.log"
fi
export PYTHONPATH=$root/platform${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

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
  "$py" - <<'EOF'
import importlib.util as u
print(" | ".join(f"{m}: {(s.submodule_search_locations or [s.origin])[0] if (s := u.find_spec(m)) else 'missing'}"
                 for m in ("ray", "mlflow", "albumentations")))
EOF
  echo '```'
  echo
  echo "| section | result | seconds | command |"
  echo "|---|---|---|---|"
} >"$work/head"

write_summary() {  # the header and the rows so far, in order; renamed into place (the CPU sections run at once)
  local tmp=$summary.$BASHPID
  cat "$work/head" >"$tmp"
  for name in kit gpu_tests degradation throughput ray_train; do
    [ ! -f "$rows/$name" ] || cat "$rows/$name" >>"$tmp"
  done
  mv "$tmp" "$summary"
}
write_summary

missing() {  # the modules among "$@" that do not import
  "$py" - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

section() {  # section NAME LIMIT_S "MODULES" "LOG_REGEX" COMMAND...: its summary row goes to $rows/NAME
  local name=$1 limit=$2 needs=$3 expect=$4 start rc result lacking
  shift 4
  lacking=$(missing $needs)
  if [ -n "$lacking" ]; then
    echo "| $name | SKIPPED (missing: $lacking) | 0 | \`$*\` |" >"$rows/$name"
    write_summary
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
  if [ "$result" = PASS ] && [ -n "$expect" ] && ! grep -qE "$expect" "$out/$name.log"; then
    result="FAIL (no '$expect' in the log)"  # e.g. a training run whose MLflow logging failed (it carries on)
  fi
  echo "| $name | $result | $(($(date +%s) - start)) | \`$*\` |" >"$rows/$name"
  write_summary
  echo "$name: $result"
  tail -n 25 "$out/$name.log"
}

gpu_files=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')
if [ "$mode" = cuda ]; then
  section gpu_tests 100 "pytest numpy scipy safetensors yaml" "" \
    "$py" -m pytest -q -p no:cacheprovider -m gpu $gpu_files
  section degradation 45 "numpy scipy" "" "$py" benchmarks/degradation.py --device cuda --tasks 30
  section throughput 220 "numpy yaml safetensors albumentations ray" "" \
    "$py" benchmarks/train_throughput.py --device cuda --steps 15 --stream-steps 0 --json "$out/throughput.json"
  section ray_train 130 "ray mlflow albumentations" "registered version: [0-9]" \
    "$py" jobs/train_cdsr.py --preset paper --set train.steps=300 --set train.precision=bf16 \
    --set scaling.degrade_actors=$(($(nproc) > 4 ? $(nproc) - 4 : 1)) \
    --set tracking.tracking_uri="sqlite:///$work/mlflow.db" --set train.storage_path="$work/ray"
else  # tiny sizes; the Ray job mostly waits on process start-ups, so the other three run beside it
  section ray_train 240 "ray mlflow albumentations" "registered version: [0-9]" \
    "$py" jobs/train_cdsr.py --preset smoke --set train.steps=2 --set train.precision=bf16 \
    --set scaling.num_workers=1 \
    --set tracking.tracking_uri="sqlite:///$work/mlflow.db" --set train.storage_path="$work/ray" &
  section gpu_tests 100 "pytest numpy scipy safetensors yaml" "" \
    "$py" -m pytest -q -p no:cacheprovider -m gpu $gpu_files
  section degradation 60 "numpy scipy" "" "$py" benchmarks/degradation.py --device cpu --tasks 2
  section throughput 120 "numpy yaml safetensors albumentations ray" "" \
    "$py" benchmarks/train_throughput.py --device cpu --tiny --models cdsr --stream-steps 0 --json "$out/throughput.json"
  wait
fi
write_summary
failed=$(grep -cE '^\| [a-z_]+ \| (FAIL|TIMEOUT)' "$summary")
rm -rf "$work"
echo
cat "$summary"
[ "$failed" = 0 ]
