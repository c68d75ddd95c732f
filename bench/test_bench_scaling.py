"""Data-parallel scale-out on this machine's CPU (torchrun, gloo): 1 process against 2, and the machine's own
ceiling; fills bench/results/scaling-<cpu>.md. Run by torchrun, this file is one rank of such a run.

    python -m pytest bench/test_bench_scaling.py -q -s      # on an idle machine
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import workloads as w

STEPS, LABEL_PAIRS = 12, 1500
RUNS = {"1": "1 process x 1 thread", "2": "2 processes x 1 thread, one group",
        "2 apart": "2 independent 1-process runs at once (the ceiling)"}

TITLE = "Scale-out on the CPU: data-parallel fit and labeling over torchrun (gloo)"
HEADER = ["run", "fit steps/s", "label pairs/s", "fit efficiency", "label efficiency"]


def table_rows(measured: dict) -> list[list]:
    """measured: run -> {fit_steps_per_s, label_pairs_per_s}."""
    one = measured.get("1")
    efficiency = lambda run, key: f"{measured[run][key] / one[key] / 2:.2f}" if one and run != "1" else "-"  # noqa: E731
    return [[RUNS[run], f"{rates['fit_steps_per_s']:.3f}", f"{rates['label_pairs_per_s']:.1f}",
             efficiency(run, "fit_steps_per_s"), efficiency(run, "label_pairs_per_s")] for run, rates in measured.items()]


def run(mode: str, tmp_path: Path) -> dict:
    """Rates of one run: 1 or 2 ranks in one group, or two 1-rank runs at once, summed."""
    outs = [tmp_path / f"rates-{i}.json" for i in range(2 if mode == "2 apart" else 1)]
    jobs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={2 if mode == '2' else 1}", __file__, str(STEPS), str(LABEL_PAIRS), str(out)],
                             env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for out in outs]
    for job in jobs:
        _, err = job.communicate()
        assert job.returncode == 0, err[-3000:]
    rates = [json.loads(out.read_text()) for out in outs]
    return {key: sum(r[key] for r in rates) for key in rates[0]}


@pytest.mark.parametrize("mode", RUNS)
def test_scaling(benchmark, table, tmp_path, sts_pairs, mode):
    pytest.importorskip("pytest_benchmark")
    if os.cpu_count() < 2 and mode != "1":
        pytest.skip("needs 2 cores")
    table.note(f"all-MiniLM-L6-v2 on STS-B pairs: {STEPS} cross-encoder steps of 32 rows (fp32), then {LABEL_PAIRS:,} "
               "pairs labeled, the work shared over the ranks; OMP_NUM_THREADS=1; efficiency: (rate / 1-process rate) / 2")
    table.note("the ceiling: two independent runs at once, no communication at all, bounds any 2-process efficiency "
               "here (two busy cores run slower than one: shared caches, memory, clocks)")
    table.measured[mode] = w.timed(benchmark, run, mode, tmp_path)


def rank_rates(steps: int, label_pairs: int, out: str) -> None:
    """This rank's share of a fit and of a labeling; rank 0 writes the group's rates to `out`."""
    from transenc import distributed, fit
    from transenc.labeling import cross_scores

    def seconds(call) -> float:  # from all ranks' start together
        distributed.barrier()
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    distributed.setup(torch.device("cpu"))
    group, pairs = distributed.world(), w.sts_unique_pairs()
    encoder, fit_call = w.prepared_fit("cross", w.minilm_path(), pairs, steps, fit.CPU_POLICY, precision="fp32",
                                       group=group)
    fit_s = seconds(fit_call)
    label_s = seconds(lambda: cross_scores(encoder, pairs.head(label_pairs), batch_size=64, group=group, show_progress=False))
    if distributed.is_main():
        Path(out).write_text(json.dumps({"fit_steps_per_s": steps / fit_s, "label_pairs_per_s": label_pairs / label_s}))
    distributed.teardown()


if __name__ == "__main__":
    rank_rates(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
