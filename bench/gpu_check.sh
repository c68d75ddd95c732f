#!/usr/bin/env bash
# One call on the GPU machine: build the extension, run the kernel tests on CUDA, run the
# benchmarks, time whole `transenc train` / `transenc label` processes. Run from anywhere; it
# works in the repository root. Logs and the results files go to $OUT when set (the device tool
# brings that folder back), else to bench/results.
#
#   bash bench/gpu_check.sh                  # every stage: env build tests bench models train
#   bash bench/gpu_check.sh env build train  # only these (each stage's timeout sums to <= 9 min)
#
# Budget: build ~30 s, tests ~1-2 min of Triton compiles, bench ~2 min, models ~2-3 min, train
# <= 6 min (restore 60 s, cycle 240 s, labels 2 x 60 s at most); all of them overrun one 10-minute
# call, so run `env build tests bench models` in one
# call and `env build train` in another (timeout_s=600, carry=[".device-data"] after
# `python bench/prepare_device_data.py` here). Each stage has its own timeout so that a hang still
# leaves the other stages' logs.
# CPU dry run of the training stage (checks that the commands start; figures mean nothing):
#   DEVICE=cpu TRAIN_EXTRA="--max-pairs 64" TRAIN_TIMEOUT=90 LABEL_PAIRS=.device-data/sts/sts-test.csv \
#     OUT=/tmp/dry bash bench/gpu_check.sh train
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/results}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
STAGES=" ${*:-env build tests bench models train} "
want() { [[ "$STAGES" == *" $1 "* ]]; }

if want env; then
echo "== environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} | tee "$OUT_DIR/env.txt"
fi

if want build; then
echo "== build (setup.py build_ext --inplace)"
if ! timeout 120 "$PY" setup.py build_ext --inplace >"$OUT_DIR/build.log" 2>&1; then
  echo "build FAILED (the kernels do not need it; the ops-door test will fail):"
  tail -20 "$OUT_DIR/build.log"
  status=1
fi
fi

test_rc=-; bench_rc=-
if want tests; then
echo "== kernel tests on CUDA (tests/test_kernels_interpret.py, interpreter run deselected)"
parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then parallel=(-n 4); fi  # compile kernels in parallel
timeout 180 "$PY" -m pytest tests/test_kernels_interpret.py -q -rs -k "not under_interpreter" \
  -p no:cacheprovider ${parallel[@]+"${parallel[@]}"} >"$OUT_DIR/pytest-kernels.log" 2>&1
test_rc=$?
tail -25 "$OUT_DIR/pytest-kernels.log"
[ "$test_rc" -eq 0 ] || status=1
grep -q " passed" "$OUT_DIR/pytest-kernels.log" || { echo "no kernel test ran on CUDA"; status=1; }
fi

if want bench; then
echo "== benchmarks (bench/gpu_bench.py)"
timeout 280 "$PY" bench/gpu_bench.py --out "$OUT_DIR" >"$OUT_DIR/bench.log" 2>&1
bench_rc=$?
[ "$bench_rc" -eq 0 ] || { status=1; echo "bench FAILED (rc $bench_rc):"; tail -40 "$OUT_DIR/bench.log"; }
fi

if want models; then
echo "== models: packed predict/encode vs sentence-transformers (bench/gpu_models.py)"
models_rc=0
if [ -f .device-data/pairs.tsv ]; then
  timeout 240 "$PY" bench/gpu_models.py --out "$OUT_DIR" >"$OUT_DIR/models.log" 2>&1
  models_rc=$?
  [ "$models_rc" -eq 0 ] || { status=1; echo "models FAILED (rc $models_rc):"; tail -30 "$OUT_DIR/models.log"; }
else
  echo "skipped: run bench/prepare_device_data.py here first and carry .device-data"
fi
fi

if want train; then
echo "== train: one default-recipe cycle, then transenc label bi and cross, as whole processes"
# The real all-MiniLM-L6-v2 (fp16 on the way, fp32 again here), 8,567 unique STS-B pairs, dev/test.
DEVICE="${DEVICE:-cuda}"
CARD=$( { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$DEVICE"; } | head -1 \
        | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
RESULTS="$OUT_DIR/gpu-$CARD.md"
RUN="$OUT_DIR/train-run"
LABEL_PAIRS="${LABEL_PAIRS:-.device-data/pairs.tsv}"
TIMER=(); [ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f "%e s wall, %M KB max RSS")
# timed_stage NAME TIMEOUT CMD...: runs CMD with its own timeout, log in $OUT_DIR/NAME.log, and
# appends one row (wall seconds, rc, /usr/bin/time's line) to the results file.
timed_stage() {
  local name=$1 limit=$2; shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" ${TIMER[@]+"${TIMER[@]}"} "$@" >"$OUT_DIR/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  [ "$rc" -eq 0 ] || { status=1; echo "$name FAILED (rc $rc):"; tail -20 "$OUT_DIR/$name.log"; }
  printf '| %s | %s | %s | %s |\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$rc" \
    "$( [ ${#TIMER[@]} -gt 0 ] && tail -1 "$OUT_DIR/$name.log" )" | tee -a "$RESULTS"
}
if [ -f .device-data/minilm/model.safetensors ]; then
  timeout 60 "$PY" bench/prepare_device_data.py --restore
  rm -rf "$RUN"
  { echo; echo "### $(date -u +%F\ %H:%M) UTC, $(head -1 "$OUT_DIR/env.txt" 2>/dev/null || echo "$DEVICE")"
    echo "$("$PY" -c 'import torch; print("torch", torch.__version__)')"; echo
    echo "| process | wall s | rc | /usr/bin/time |"; echo "|---|---:|---:|---|"; } >>"$RESULTS"
  timed_stage train-cycle "${TRAIN_TIMEOUT:-240}" "$PY" -m transenc train --pairs .device-data/stsb_unlabeled.tsv \
    --model .device-data/minilm-fp32 --dev .device-data/sts/sts-dev.csv --test .device-data/sts/sts-test.csv \
    --cycles 1 --device "$DEVICE" --out "$RUN" ${TRAIN_EXTRA:-}
  for mode in bi cross; do
    model=.device-data/minilm-fp32; [ "$mode" = cross ] && model="$RUN/cross"
    [ -d "$model" ] || model=.device-data/minilm-fp32  # no trained cross-encoder: fresh head, same speed
    timed_stage "label-$mode" 60 "$PY" -m transenc label --pairs "$LABEL_PAIRS" --mode "$mode" \
      --model "$model" --device "$DEVICE" --out "$OUT_DIR/label-$mode.tsv"
  done
  rm -rf "$OUT_DIR"/label-*.tsv .device-data/minilm-fp32  # 91 MB: never carried back or along
  # each stage's seconds and the dev/test figures, from the run's own metrics
  [ -f "$RUN/metrics.json" ] && "$PY" - "$RUN/metrics.json" >>"$RESULTS" 2>&1 <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
for c in m["cycles"]:
    stages = c["stages"]
    print("\ncycle %d stages (s): %s" % (c["cycle"], ", ".join(f"{k} {v['seconds']}" for k, v in stages.items())))
    for k in ("cross_train", "bi_train"):
        if k in stages:
            print(f"{k}: steps {stages[k]['models'][0]['steps']}, best dev {stages[k]['models'][0]['best_dev']}")
    for k in ("cross_label", "bi_train"):
        if stages.get(k, {}).get("dev"):
            print(f"{k}: dev {stages[k]['dev']['models']}, test {stages[k]['test']['models'] if stages[k].get('test') else '-'}")
PYEOF
  tail -12 "$RESULTS"
else
  echo "skipped: run bench/prepare_device_data.py here first and carry .device-data"
fi
fi

echo "== summary"
echo "build: $( [ -f "$OUT_DIR/build.log" ] && grep -c -i error "$OUT_DIR/build.log" ) error lines; tests rc $test_rc: $(tail -1 "$OUT_DIR/pytest-kernels.log" 2>/dev/null); bench rc $bench_rc"
grep -v '^|' "$OUT_DIR/bench.log" 2>/dev/null | grep -E 'mismatch|max \||faster|Ceilings|all finite' || true
grep '^|' "$OUT_DIR/bench.log" 2>/dev/null || true
grep '^|' "$OUT_DIR/models.log" 2>/dev/null || true
exit $status
