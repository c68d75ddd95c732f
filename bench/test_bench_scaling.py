"""Scale-out on this machine's CPU: cross-encoder fit steps/s and cross-encoder labeling pairs/s,
1 process x 1 thread against 2 processes x 1 thread each (torchrun, gloo), all-MiniLM-L6-v2 on
STS-B pairs, fp32. Scaling efficiency = (2-process rate / 1-process rate) / 2.

    python -m pytest bench/test_bench_scaling.py --benchmark-only -q -s

The third run is the machine's own ceiling: two independent 1-process runs at once, with no
communication at all; their summed rate over twice the 1-process rate bounds any 2-process
efficiency here (two busy cores run slower than one: shared caches, memory, clocks).

The figures only mean something on an otherwise idle machine: say how loaded it was beside them.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import workloads as w

pytest.importorskip("pytest_benchmark")
HERE = Path(__file__).parent
STEPS, LABEL_PAIRS = 12, 1500
rates = {}


def launch(nproc, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                             str(HERE / "dist_worker.py"), "rates", str(STEPS), str(LABEL_PAIRS), str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run(mode, tmp_path):
    """Rates of one run: 1 or 2 ranks in one group, or (mode "2 apart") two 1-rank runs at once, summed."""
    outs = [tmp_path / f"rates-{i}.json" for i in range(2 if mode == "2 apart" else 1)]
    jobs = [launch(2 if mode == 2 else 1, out) for out in outs]
    for job in jobs:
        _, err = job.communicate()
        assert job.returncode == 0, err[-3000:]
    rates = [json.loads(out.read_text()) for out in outs]
    return {key: sum(r[key] for r in rates) for key in rates[0]}


@pytest.mark.parametrize("mode", [1, 2, "2 apart"])
def test_scaling(benchmark, tmp_path, mode):
    try:
        w.sts_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    if os.cpu_count() < 2 and mode != 1:
        pytest.skip("needs 2 cores")
    rates[mode] = benchmark.pedantic(run, args=(mode, tmp_path), rounds=1, iterations=1)
    benchmark.extra_info.update(rates[mode])
    print(f"\n{mode} process(es) x 1 thread: fit {rates[mode]['fit_steps_per_s']:.3f} steps/s, "
          f"label {rates[mode]['label_pairs_per_s']:.1f} pairs/s")
    if mode != 1 and 1 in rates:
        for key in ("fit_steps_per_s", "label_pairs_per_s"):
            efficiency = rates[mode][key] / rates[1][key] / 2
            benchmark.extra_info[f"{key}_efficiency"] = efficiency
            print(f"  {key}: {'ceiling' if mode == '2 apart' else 'scaling efficiency'} {efficiency:.2f}")
