#!/usr/bin/env bash
# One call on the GPU machine: build the extension, run the kernel tests on CUDA, run the
# benchmarks. Run from anywhere; it works in the repository root. Logs and the results file go
# to $OUT when set (the device tool brings that folder back), else to bench/results.
# Budget: about 8 minutes (build ~30 s, tests ~1-2 min of Triton compiles, benchmarks ~2 min,
# models ~2-3 min; call it with timeout_s=600 and carry=[".device-data"]);
# each stage has its own timeout so that a hang still leaves the other stages' logs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/results}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

echo "== environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} | tee "$OUT_DIR/env.txt"

echo "== build (setup.py build_ext --inplace)"
if ! timeout 120 "$PY" setup.py build_ext --inplace >"$OUT_DIR/build.log" 2>&1; then
  echo "build FAILED (the kernels do not need it; the ops-door test will fail):"
  tail -20 "$OUT_DIR/build.log"
  status=1
fi

echo "== kernel tests on CUDA (tests/test_kernels_interpret.py, interpreter run deselected)"
parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then parallel=(-n 4); fi  # compile kernels in parallel
timeout 180 "$PY" -m pytest tests/test_kernels_interpret.py -q -rs -k "not under_interpreter" \
  -p no:cacheprovider ${parallel[@]+"${parallel[@]}"} >"$OUT_DIR/pytest-kernels.log" 2>&1
test_rc=$?
tail -25 "$OUT_DIR/pytest-kernels.log"
[ "$test_rc" -eq 0 ] || status=1
grep -q " passed" "$OUT_DIR/pytest-kernels.log" || { echo "no kernel test ran on CUDA"; status=1; }

echo "== benchmarks (bench/gpu_bench.py)"
timeout 280 "$PY" bench/gpu_bench.py --out "$OUT_DIR" >"$OUT_DIR/bench.log" 2>&1
bench_rc=$?
[ "$bench_rc" -eq 0 ] || { status=1; echo "bench FAILED (rc $bench_rc):"; tail -40 "$OUT_DIR/bench.log"; }

echo "== models: packed predict/encode vs sentence-transformers (bench/gpu_models.py)"
models_rc=0
if [ -f .device-data/pairs.tsv ]; then
  timeout 240 "$PY" bench/gpu_models.py --out "$OUT_DIR" >"$OUT_DIR/models.log" 2>&1
  models_rc=$?
  [ "$models_rc" -eq 0 ] || { status=1; echo "models FAILED (rc $models_rc):"; tail -30 "$OUT_DIR/models.log"; }
else
  echo "skipped: run bench/prepare_device_data.py here first and carry .device-data"
fi

echo "== summary"
echo "build: $( [ -f "$OUT_DIR/build.log" ] && grep -c -i error "$OUT_DIR/build.log" ) error lines; tests rc $test_rc: $(tail -1 "$OUT_DIR/pytest-kernels.log"); bench rc $bench_rc"
grep -v '^|' "$OUT_DIR/bench.log" | grep -E 'mismatch|max \||faster|Ceilings|all finite' || true
grep '^|' "$OUT_DIR/bench.log" || true
grep '^|' "$OUT_DIR/models.log" 2>/dev/null || true
exit $status
