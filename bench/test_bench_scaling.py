"""Scale-out on this machine's CPU: cross-encoder fit steps/s and cross-encoder labeling pairs/s,
1 process x 1 thread against 2 processes x 1 thread each (torchrun, gloo), all-MiniLM-L6-v2 on
STS-B pairs, fp32. Scaling efficiency = (2-process rate / 1-process rate) / 2.

    python -m pytest bench/test_bench_scaling.py --benchmark-only -q -s

The figures only mean something on an otherwise idle machine: say how loaded it was beside them.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import model_workloads as w

pytest.importorskip("pytest_benchmark")
HERE = Path(__file__).parent
STEPS, LABEL_PAIRS = 12, 1500
rates = {}


def run_ranks(nproc, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           str(HERE / "dist_scaling_worker.py"), str(STEPS), str(LABEL_PAIRS), str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(Path(out).read_text())


@pytest.mark.parametrize("nproc", [1, 2])
def test_scaling(benchmark, tmp_path, nproc):
    try:
        w.sts_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    if os.cpu_count() < nproc:
        pytest.skip(f"needs {nproc} cores")
    rates[nproc] = benchmark.pedantic(run_ranks, args=(nproc, tmp_path / "rates.json"), rounds=1, iterations=1)
    benchmark.extra_info.update(rates[nproc])
    print(f"\n{nproc} process(es) x 1 thread: fit {rates[nproc]['fit_steps_per_s']:.3f} steps/s, "
          f"label {rates[nproc]['label_pairs_per_s']:.1f} pairs/s")
    if nproc == 2 and 1 in rates:
        for key in ("fit_steps_per_s", "label_pairs_per_s"):
            efficiency = rates[2][key] / rates[1][key] / 2
            benchmark.extra_info[f"{key}_efficiency"] = efficiency
            print(f"  {key}: scaling efficiency {efficiency:.2f}")
