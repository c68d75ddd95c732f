#!/usr/bin/env bash
# One call on the GPU machine: build the extension; time a default-recipe cycle and `transenc label` as processes,
# training steps, predict/encode and the Triton kernels against their anchors (bench/ files' tables); run the kernel
# tests on CUDA and the cycle under torchrun.
#   python scripts/device_data.py              # here, first: real MiniLM (fp16) and STS-B into .device-data/
#   bash bench/gpu_check.sh [STAGE...]         # there (device run, carry=[".device-data"], timeout_s=600)
# Stages, most wanted first: env build train steps models bench tests dist, under one deadline (DEADLINE s, 540 by
# default): each gets its own limit or what is left, skipped with under 20 s left, so one call fits the device tool's
# 10 minutes and a hang still leaves the others' logs. All lands in $WORK (default /tmp/gpu-check), the tables too;
# gpu-check-<card>.md and logs.tar.gz go to $OUT when set (the device tool brings back 8 files at most), else
# bench/results. CPU dry run (the commands start; figures mean nothing; kernels interpreted; steps and tests need CUDA):
#   DEVICE=cpu TRAIN_EXTRA="--max-pairs 64" LABEL_PAIRS=.device-data/sts/sts-test.csv \
#     OUT=/tmp/dry bash bench/gpu_check.sh env train models bench dist
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
DEADLINE="${DEADLINE:-540}"
WORK="${WORK:-/tmp/gpu-check}"
FINAL="${OUT:-bench/results}"
rm -rf "$WORK"; mkdir -p "$WORK" "$FINAL"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRANSENC_BENCH_RESULTS="$WORK"
# pytest-benchmark is not installed there: .device-data/site brings it (scripts/device_data.py)
"$PY" -c "import pytest_benchmark" 2>/dev/null || PYTHONPATH="$PYTHONPATH:$PWD/.device-data/site"
[ "$DEVICE" = cpu ] && export TRITON_INTERPRET=1  # the dry run's kernels: Triton's interpreter
STAGES=" ${*:-env build train steps models bench tests dist} "
status=0
MODEL=.device-data/minilm-fp32
LABEL_PAIRS="${LABEL_PAIRS:-.device-data/pairs.tsv}"
CARD=$( { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$DEVICE"; } | head -1 \
        | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
TIMER=(); [ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f "%e s wall, %M KB max RSS")

want() { [[ "$STAGES" == *" $1 "* ]]; }
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
# limit N: N, or the seconds left before the deadline if fewer
limit() { local l; l=$(left); l=$(( l < 1 ? 1 : l )); echo $(( $1 < l ? $1 : l )); }
# stage NAME MAX: announce a stage; false (skip it) with under 20 s left
stage() {
  if [ "$(left)" -lt 20 ]; then echo "== $1: skipped, $(left) s left of the ${DEADLINE} s deadline"; return 1; fi
  echo "== $1 (limit $(limit "$2") s, t+$(( $(date +%s) - START )) s)"
}
# run NAME MAX CMD...: CMD under its limit, log in $WORK/NAME.log; prints the log's tail on failure
run() {
  local name=$1 max=$2; shift 2
  timeout "$(limit "$max")" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || { status=1; echo "$name FAILED (rc $rc):"; tail -25 "$WORK/$name.log"; }
  return $rc
}
# benchmark NAME MAX FILE ARGS...: one bench/ file through pytest-benchmark; its table lands in $WORK
benchmark() {
  local name=$1 max=$2 file=$3; shift 3
  run "$name" "$max" "$PY" -m pytest "bench/$file" -q -s -p no:cacheprovider --bench-device "$DEVICE" "$@"
}
has_data() { [ -f .device-data/minilm/model.safetensors ] || { echo "skipped: run 'python scripts/device_data.py' here first and carry .device-data"; return 1; }; }
restore() { [ -f "$MODEL/model.safetensors" ] || run restore 60 "$PY" scripts/device_data.py --restore; }
# timed NAME MAX CMD...: run, then one row (wall seconds, rc, /usr/bin/time's line) of $WORK/processes.txt
timed() {
  local name=$1 max=$2 t0 t1 rc; shift 2
  t0=$(date +%s.%N); run "$name" "$max" ${TIMER[@]+"${TIMER[@]}"} "$@"; rc=$?; t1=$(date +%s.%N)
  printf '| %s | %s | %s | %s |\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$rc" \
    "$( [ ${#TIMER[@]} -gt 0 ] && tail -1 "$WORK/$name.log" )" | tee -a "$WORK/processes.txt"
}
# run_summary RUN_DIR: each stage's seconds, steps, best dev and dev/test figures, from the run's metrics.json
run_summary() {
  [ -f "$1/metrics.json" ] || { echo "(no metrics.json in $1)"; return; }
  "$PY" - "$1/metrics.json" <<'PYEOF'
import json, sys
for cycle in json.load(open(sys.argv[1]))["cycles"]:
    for name, stage in cycle["stages"].items():
        fit = stage["models"][0] if name.endswith("_train") else {}
        figures = [f"{k} {fit[k]}" for k in ("steps", "best_dev") if k in fit]
        figures += [f"{k} {stage[k]['models']}" for k in ("dev", "test") if stage.get(k)]
        print(f"cycle {cycle['cycle']} {name}: {stage['seconds']} s", *figures, sep="; ")
PYEOF
}
train_cycle() {  # NAME RUN_DIR LAUNCHER...: one default-recipe cycle on the 8,567 STS-B pairs
  local name=$1 dir=$2; shift 2
  rm -rf "$dir"
  timed "$name" 200 "$@" train --pairs .device-data/stsb_unlabeled.tsv --model "$MODEL" \
    --dev .device-data/sts/sts-dev.csv --test .device-data/sts/sts-test.csv --cycles 1 --device "$DEVICE" \
    --out "$dir" ${TRAIN_EXTRA:-}
}

if want env && stage env 20; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
    "$PY" -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__, 'cuda', torch.version.cuda)"
    nproc; } >"$WORK/env.txt" 2>&1
  cat "$WORK/env.txt"
fi

if want build && stage build 120; then
  run build 120 "$PY" setup.py build_ext --inplace && echo "built"
fi

if want train && stage train 320 && has_data && restore; then
  echo "| process | wall s | rc | /usr/bin/time |" >"$WORK/processes.txt"; echo "|---|---:|---:|---|" >>"$WORK/processes.txt"
  train_cycle train-cycle "$WORK/train-run" "$PY" -m transenc
  run_summary "$WORK/train-run" | tee "$WORK/train-summary.txt"
  cross=$MODEL; [ -d "$WORK/train-run/cross" ] && cross="$WORK/train-run/cross"  # the cycle's, when it finished
  for mode in bi cross; do
    model=$MODEL; [ "$mode" = cross ] && model=$cross
    timed "label-$mode" 60 "$PY" -m transenc label --pairs "$LABEL_PAIRS" --mode "$mode" --model "$model" \
      --device "$DEVICE" --out "$WORK/label-$mode.tsv"
  done
  benchmark label-breakdown 90 test_bench_label_breakdown.py --label-pairs "$LABEL_PAIRS" --label-runs 1 \
    --label-model "$MODEL" --label-cross-model "$cross" && grep '^|' "$WORK"/label-breakdown-*.md
fi

if want steps && [ "$DEVICE" = cuda ] && stage steps 120 && has_data && restore; then
  benchmark steps 120 test_bench_training.py && grep '^|' "$WORK"/training-*.md
fi

if want models && stage models 150 && has_data && restore; then
  benchmark models 150 test_bench_gpu_models.py && grep '^|' "$WORK"/gpu-models-*.md
fi

if want bench && stage bench 200; then
  benchmark bench 200 test_bench_gpu_kernels.py && grep -E '^(- |\|)' "$WORK"/gpu-kernels-*.md
fi

if want tests && stage tests 150; then
  parallel=(); "$PY" -c "import xdist" 2>/dev/null && parallel=(-n 8)  # compile the kernels in parallel
  run pytest-kernels 150 "$PY" -m pytest tests/test_kernels_interpret.py -q -rs -k "not under_interpreter" \
    -p no:cacheprovider ${parallel[@]+"${parallel[@]}"}
  tail -5 "$WORK/pytest-kernels.log"
  grep -q " passed" "$WORK/pytest-kernels.log" || { echo "no kernel test ran on CUDA"; status=1; }
fi

if want dist && stage dist 150 && has_data && restore; then
  # torchrun with one process on the one GPU: the plain run's figures are expected
  train_cycle torchrun-cycle "$WORK/torchrun-run" "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m transenc
  run_summary "$WORK/torchrun-run" | tee "$WORK/torchrun-summary.txt"
fi

echo "== results (t+$(( $(date +%s) - START )) s)"
mkdir -p "$WORK/results"; RESULTS="$WORK/results/gpu-check-$CARD.md"
{
  echo "# bench/gpu_check.sh on $CARD, $(date -u +'%F %H:%M') UTC"; echo
  echo '```'; cat "$WORK/env.txt" 2>/dev/null; echo '```'
  # the benchmarks' tables (*.md) as they are; the other parts under a title
  for part in "processes.txt:Whole processes (a default-recipe cycle on 8,567 STS-B pairs; transenc label on $LABEL_PAIRS)" \
              "train-summary.txt:The cycle's own metrics.json" "*.md:" "pytest-kernels.log:Kernel tests on CUDA (last lines)" \
              "torchrun-summary.txt:The cycle under torchrun --nproc-per-node 1"; do
    file=${part%%:*}; title=${part#*:}
    for f in "$WORK"/$file; do
      [ -f "$f" ] || continue
      echo; [ -n "$title" ] && { echo "## $title"; echo; }
      case "$f" in *.md|*processes.txt) cat "$f" ;; *pytest*) echo '```'; tail -4 "$f"; echo '```' ;; *) echo '```'; cat "$f"; echo '```' ;; esac
    done
  done
} >"$RESULTS"
rm -f "$WORK"/label-*.tsv
tar czf "$WORK/logs.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.npy' --exclude='*.tsv' --exclude=tokenizer.json --exclude=vocab.txt --exclude='*.tar.gz' . 2>/dev/null
cp "$RESULTS" "$WORK/logs.tar.gz" "$FINAL/"
rm -rf "$MODEL"  # 91 MB: never carried back or along
echo "results: $FINAL/$(basename "$RESULTS")"
exit $status
