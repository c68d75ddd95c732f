#!/usr/bin/env bash
# One call on the GPU machine: build the extension, time training steps, a whole default-recipe
# cycle and `transenc label` as processes, predict/encode against sentence-transformers, the Triton
# kernels against their anchors, the kernel tests on CUDA, and the cycle under torchrun. Run from
# anywhere; it works in the repository root.
#
#   python bench/workloads.py device-data      # here, first: real MiniLM (fp16) and STS-B into .device-data/
#   bash bench/gpu_check.sh                    # there (device run, carry=[".device-data"], timeout_s=600)
#   bash bench/gpu_check.sh env build train    # only these stages
#
# Stages, most wanted first: env build train steps models bench tests dist. All of them share one
# deadline (DEADLINE seconds after the start, 540 by default): each stage gets its own limit or
# what is left, whichever is less, and is skipped with under 20 s left, so one call fits the
# device tool's 10 minutes and a hang still leaves the other stages' logs.
# Everything lands in $WORK (default /tmp/gpu-check); at the end the one results file
# gpu-check-<card>.md and logs.tar.gz go to $OUT when set (the device tool brings back 8 files at
# most), else to bench/results.
# CPU dry run (checks that the commands start; figures mean nothing; steps and tests need CUDA):
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
# pytest-benchmark is not installed there: .device-data/site brings it (workloads.py device-data)
"$PY" -c "import pytest_benchmark" 2>/dev/null || PYTHONPATH="$PYTHONPATH:$PWD/.device-data/site"
STAGES=" ${*:-env build train steps models bench tests dist} "
status=0
MODEL=.device-data/minilm-fp32
LABEL_PAIRS="${LABEL_PAIRS:-.device-data/pairs.tsv}"
CARD=$( { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$DEVICE"; } | head -1 \
        | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
DRY_RUN=(); [ "$DEVICE" = cpu ] && DRY_RUN=(--dry-run)  # gpu_bench.py on a CPU: tiny sizes, Triton's interpreter
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
has_data() { [ -f .device-data/minilm/model.safetensors ] || { echo "skipped: run 'python bench/workloads.py device-data' here first and carry .device-data"; return 1; }; }
restore() { [ -f "$MODEL/model.safetensors" ] || run restore 60 "$PY" bench/workloads.py device-data --restore; }
# timed NAME MAX CMD...: run, then one row (wall seconds, rc, /usr/bin/time's line) of $WORK/processes.md
timed() {
  local name=$1 max=$2 t0 t1 rc; shift 2
  t0=$(date +%s.%N); run "$name" "$max" ${TIMER[@]+"${TIMER[@]}"} "$@"; rc=$?; t1=$(date +%s.%N)
  printf '| %s | %s | %s | %s |\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$rc" \
    "$( [ ${#TIMER[@]} -gt 0 ] && tail -1 "$WORK/$name.log" )" | tee -a "$WORK/processes.md"
}
# run_summary RUN_DIR: each stage's seconds, steps and dev/test figures from the run's metrics.json
run_summary() {
  [ -f "$1/metrics.json" ] || { echo "(no metrics.json in $1)"; return; }
  "$PY" - "$1/metrics.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
for c in m["cycles"]:
    stages = c["stages"]
    print("cycle %d stages (s): %s" % (c["cycle"], ", ".join(f"{k} {v['seconds']}" for k, v in stages.items())))
    for k in ("cross_train", "bi_train"):
        if k in stages:
            print(f"- {k}: steps {stages[k]['models'][0]['steps']}, best dev {stages[k]['models'][0]['best_dev']}")
    for k in ("cross_label", "bi_train"):
        if stages.get(k, {}).get("dev"):
            print(f"- {k}: dev {stages[k]['dev']['models']}, test {stages[k]['test']['models'] if stages[k].get('test') else '-'}")
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
  echo "| process | wall s | rc | /usr/bin/time |" >"$WORK/processes.md"; echo "|---|---:|---:|---|" >>"$WORK/processes.md"
  train_cycle train-cycle "$WORK/train-run" "$PY" -m transenc
  run_summary "$WORK/train-run" | tee "$WORK/train-summary.txt"
  cross=$MODEL; [ -d "$WORK/train-run/cross" ] && cross="$WORK/train-run/cross"  # the cycle's, when it finished
  for mode in bi cross; do
    model=$MODEL; [ "$mode" = cross ] && model=$cross
    timed "label-$mode" 60 "$PY" -m transenc label --pairs "$LABEL_PAIRS" --mode "$mode" --model "$model" \
      --device "$DEVICE" --out "$WORK/label-$mode.tsv"
  done
  run label-breakdown 90 "$PY" -m pytest bench/test_bench_label.py -k breakdown --benchmark-only -q -s \
    -p no:cacheprovider --label-pairs "$LABEL_PAIRS" --label-runs 1 --label-model "$MODEL" --label-cross-model "$cross" \
    --bench-device "$DEVICE" && grep '^|' "$WORK"/label-breakdown-*.md
fi

if want steps && [ "$DEVICE" = cuda ] && stage steps 120 && has_data && restore; then
  run steps 120 "$PY" -m pytest bench/test_bench_training.py -k cuda --benchmark-only -q -s -p no:cacheprovider \
    && grep -E "steps/s|syncs per step" "$WORK/steps.log"
fi

if want models && stage models 150; then
  run models 150 "$PY" bench/gpu_bench.py --only models --out "$WORK" ${DRY_RUN[@]+"${DRY_RUN[@]}"} && grep '^|' "$WORK/models.log"
fi

if want bench && stage bench 200; then
  run bench 200 "$PY" bench/gpu_bench.py --only kernels --out "$WORK" ${DRY_RUN[@]+"${DRY_RUN[@]}"}
  grep -v '^|' "$WORK/bench.log" | grep -E 'mismatch|max \||faster|Ceilings|all finite|bad' | head -20
  grep '^|' "$WORK/bench.log"
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
  for part in "processes.md:Whole processes (a default-recipe cycle on 8,567 STS-B pairs; transenc label on $LABEL_PAIRS)" \
              "train-summary.txt:The cycle's own metrics.json" "label-breakdown-*.md:" \
              "steps.log:Training steps (bench/test_bench_training.py -k cuda)" "gpu-models-*.md:" "gpu-kernels-*.md:" \
              "pytest-kernels.log:Kernel tests on CUDA (last lines)" "torchrun-summary.txt:The cycle under torchrun --nproc-per-node 1"; do
    file=${part%%:*}; title=${part#*:}
    for f in "$WORK"/$file; do
      [ -f "$f" ] || continue
      echo; [ -n "$title" ] && { echo "## $title"; echo; }
      case "$f" in *.md) cat "$f" ;; *pytest*) echo '```'; tail -4 "$f"; echo '```' ;; *) echo '```'; cat "$f"; echo '```' ;; esac
    done
  done
} >"$RESULTS"
rm -f "$WORK"/label-*.tsv
tar czf "$WORK/logs.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.npy' --exclude='*.tsv' --exclude=tokenizer.json --exclude=vocab.txt --exclude='*.tar.gz' . 2>/dev/null
cp "$RESULTS" "$WORK/logs.tar.gz" "$FINAL/"
rm -rf "$MODEL"  # 91 MB: never carried back or along
echo "results: $FINAL/$(basename "$RESULTS")"
exit $status
