"""The fixed cost of a `transenc label` process against importing torch and transformers alone;
fills bench/results/startup-<cpu>.md.

    python -m pytest bench/test_bench_startup.py -q -s      # on an idle machine
"""
import subprocess
import sys

import pytest

import workloads as w
from transenc.bundled import DEMO_PAIRS

pytest.importorskip("pytest_benchmark")
ROUNDS = 7
BOUND = 1.5  # the engine issue's bound: 20 pairs within this many times the imports alone
IMPORTS = "`python -c \"import torch, transformers\"`"

TITLE = "The fixed cost of a `transenc label` process"
HEADER = ["process", "seconds", "vs imports alone", f"within {BOUND}x"]


def table_rows(measured: dict) -> list[list]:
    anchor = measured.get(IMPORTS)

    def bound(name: str, s: float) -> str:
        return "-" if name == IMPORTS or not anchor else "yes" if s / anchor <= BOUND else "**no**"

    return [[name, f"{s:.2f}", f"{s / anchor:.2f}x" if anchor else "-", bound(name, s)] for name, s in measured.items()]


@pytest.fixture(scope="module")
def twenty_pairs(tmp_path_factory, table):
    table.note(f"median of {ROUNDS} fresh processes each, after one warm-up; default precision (auto); the bound: "
               f"`transenc label` of 20 pairs within {BOUND}x the imports alone")
    path = tmp_path_factory.mktemp("startup") / "pairs.tsv"
    path.write_text("".join(DEMO_PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)[:20]), encoding="utf-8")
    return path


@pytest.mark.parametrize("what", ["imports", "bi", "cross"])
def test_startup(benchmark, table, twenty_pairs, what):
    if what == "imports":
        name, command = IMPORTS, [sys.executable, "-c", "import torch, transformers"]
    else:
        name = f"`transenc label`, 20 pairs, {what}"
        model = ["--mode", "cross", "--model", str(w.trained_cross_encoder())] if what == "cross" else []
        command = w.label_command(twenty_pairs, "--out", twenty_pairs.with_suffix(".out.tsv"), *model)
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    w.timed(benchmark, subprocess.run, command, check=True, capture_output=True, rounds=ROUNDS)
    table.measured[name] = benchmark.stats.stats.median
