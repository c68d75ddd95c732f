"""The fixed cost of a `transenc label` process: 20 pairs (bi: all-MiniLM-L6-v2; cross: the bench's
trained MiniLM cross-encoder), against `python -c "import torch, transformers"`, each as a fresh
process, side by side in one run. Writes bench/results/startup-<cpu>.md.

    python -m pytest bench/test_bench_startup.py --benchmark-only -q -s
"""
import subprocess
import sys
from pathlib import Path

import pytest

import workloads as w
from results_writer import write_table
from transenc.bundled import DEMO_PAIRS

pytest.importorskip("pytest_benchmark")
ROUNDS = 7
BAR = 1.5  # the engine issue's bound: label of 20 pairs within this many times the imports alone
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "pairs.tsv"
    path.write_text("".join(DEMO_PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)[:20]), encoding="utf-8")
    yield path
    write_results()


def commands(pairs: Path) -> dict[str, list[str]]:
    label = [str(Path(sys.executable).parent / "transenc"), "label", "--pairs", str(pairs), "--device", "cpu",
             "--out", str(pairs.with_suffix(".out.tsv"))]
    return {"`python -c \"import torch, transformers\"`": [sys.executable, "-c", "import torch, transformers"],
            "`transenc label`, 20 pairs, bi": label,
            "`transenc label`, 20 pairs, cross": label + ["--mode", "cross", "--model", str(w.trained_cross_encoder())]}


@pytest.mark.parametrize("what", range(3))
def test_process(benchmark, pairs_file, what):
    name, command = list(commands(pairs_file).items())[what]
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    benchmark.pedantic(subprocess.run, args=(command,), kwargs={"check": True, "capture_output": True},
                       rounds=ROUNDS, iterations=1)
    SECONDS[name] = benchmark.stats.stats.median


def write_results() -> None:
    names = list(SECONDS)
    if not names or not names[0].startswith("`python"):
        return
    anchor = SECONDS[names[0]]
    rows = [[n, f"{s:.2f}", f"{s / anchor:.2f}x"] for n, s in SECONDS.items()]
    notes = [f"median of {ROUNDS} fresh processes each, after one warm-up; default precision (auto)",
             f"the bound: `transenc label` of 20 pairs within {BAR}x the imports alone",
             "regenerate: `python -m pytest bench/test_bench_startup.py --benchmark-only -q -s` (idle machine)"]
    print(write_table("startup", "The fixed cost of a `transenc label` process", notes,
                      ["process", "seconds", "vs imports alone"], rows))
