#!/usr/bin/env bash
# Sets up .venv with everything transenc needs, on a fresh machine: the CPU wheel of torch
# (never a free torch choice, which would pull a multi-GB CUDA build), then transenc itself,
# compiled from csrc/, with its test and report (matplotlib) extras.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # Named by its local version, only a CPU build matches (PyPI's plain torch==2.13.0 for Linux is
  # the CUDA one): from the indexes pip is set up with, else, where they have no such build, from
  # PyTorch's CPU index. Any other failure (network, disk, an interrupt) is pip's to tell.
  if ! log=$(.venv/bin/pip install --quiet "torch==2.13.0+cpu" 2>&1); then
    grep -q "No matching distribution found" <<<"$log" || { printf '%s\n' "$log" >&2; exit 1; }
    .venv/bin/pip install --quiet "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
.venv/bin/pip install --quiet -e ".[test,report]"
.venv/bin/python -c "import transenc._C, torch; print('transenc ready: torch', torch.__version__)"
