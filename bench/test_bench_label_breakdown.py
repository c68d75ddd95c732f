"""Where the time of a `transenc label` process goes, bi and cross: a child wraps the library's own
functions in timers and runs the real command; fills bench/results/label-breakdown-<machine>.md.

    python -m pytest bench/test_bench_label_breakdown.py -q -s
    (bench/gpu_check.sh adds --label-pairs, --label-model, --label-cross-model, --label-runs and --bench-device cuda)
"""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import workloads as w

pytest.importorskip("pytest_benchmark")
PHASES = ("interpreter start", "imports", "argparse", "reading", "model load", "tokenizing", "model work", "scoring",
          "writing", "rest (file writes, exit)", "of model load: cuda start")
TOTALS = ("total (instrumented)", "total (plain process)")
# `transenc label` with the library's own functions wrapped in timers
_TIMED_LABEL = r"""
import json, sys, time
t_first, t0 = time.time(), time.perf_counter()
import transenc.cli, transenc.distributed, transenc.labeling, transenc.readers, transenc.writers
import transenc.tokens, transenc.models, transenc.ops, torch.cuda
times, calls = {"imports": time.perf_counter() - t0}, {}

def timed(owner, name, phase):
    original = getattr(owner, name)
    def clocked(call):
        start = time.perf_counter()
        try:
            return call()
        finally:
            times[phase] = times.get(phase, 0.0) + time.perf_counter() - start
    def wrapper(*args, **kwargs):
        calls[phase] = calls.get(phase, 0) + 1
        return clocked(lambda: original(*args, **kwargs))
    def iterating(*args, **kwargs):  # a generator's time is spent in its next() calls, between the consumer's work
        calls[phase] = calls.get(phase, 0) + 1
        items = original(*args, **kwargs)
        while (item := clocked(lambda: next(items, StopIteration))) is not StopIteration:
            yield item
    setattr(owner, name, iterating if phase == "reading" else wrapper)

for owner, name, phase in [(transenc.cli, "build_parser", "argparse"), (transenc.readers.PairReader, "chunks", "reading"),
                           (transenc.labeling, "load_scorer", "model load"), (transenc.ops, "pair_cosine_indexed", "scoring"),
                           (transenc.tokens.TokenCache, "__init__", "tokenizing"), (transenc.writers, "score_rows", "writing"),
                           (transenc.models._Encoder, "_run", "model work"),
                           (torch.cuda, "_lazy_init", "of model load: cuda start")]:  # CUDA's lazy start, inside model load
    timed(owner, name, phase)
code = transenc.cli.main(sys.argv[1:])
print(json.dumps({"first_line": t_first, "times": times, "calls": calls}))
transenc.distributed.exit_now(code)  # the command's own way out (transenc.cli.run)
"""
INSTRUMENTED = (sys.executable, "-c", _TIMED_LABEL)

TITLE = "Where the time of a `transenc label` process goes"
HEADER = ["phase", "bi", "cross"]


def table_rows(measured: dict) -> list[list]:
    """measured: mode -> phase -> median seconds."""
    cell = lambda mode, name: f"{measured[mode][name]:.2f}" if mode in measured else "-"  # noqa: E731
    return [[name, cell("bi", name), cell("cross", name)] for name in PHASES + TOTALS]


def instrumented_run(command: list[str]) -> dict:
    """Phase -> seconds of one instrumented process (`command` started by INSTRUMENTED), and its calls per phase."""
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    total = time.time() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    phases = {name: report["times"].get(name, 0.0) for name in PHASES}
    phases["interpreter start"] = report["first_line"] - start
    # what no phase covers: the buffered file writes and the interpreter's exit
    phases["rest (file writes, exit)"] = total - sum(v for k, v in phases.items() if not k.startswith("of "))
    return {**phases, "total (instrumented)": total, "calls": report["calls"]}


@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_breakdown(benchmark, request, table, tmp_path, device, mode):
    option = request.config.getoption
    pairs, runs = option("--label-pairs") or str(w.sts_dir() / "sts-test.csv"), option("--label-runs")
    model = option("--label-model") if mode == "bi" else option("--label-cross-model") or str(w.trained_cross_encoder())
    options = ["--mode", mode, "--out", tmp_path / "out.tsv", *(["--model", model] if model else [])]
    instrumented = [instrumented_run(w.label_command(pairs, *options, program=INSTRUMENTED, device=device))
                    for _ in range(runs)]
    w.timed(benchmark, subprocess.run, w.label_command(pairs, *options, device=device), check=True,
            capture_output=True, rounds=runs)
    medians = {name: statistics.median(run[name] for run in instrumented) for name in PHASES + TOTALS[:1]}
    table.measured[mode] = {**medians, "total (plain process)": benchmark.stats.stats.median}
    table.note(f"`transenc label` on {Path(pairs).name}, {device}, {runs} run(s) of each, median seconds")
    table.note(f"{mode}: {Path(model).name if model else 'all-MiniLM-L6-v2'}; calls per phase {instrumented[0]['calls']}")
    table.note("reading: the reader's chunks (bi reads its first pass in a thread beside the model load: the two "
               "overlap); model load includes any transformers import it triggers (none for a BERT checkpoint: "
               "transenc.bert, transenc.wordpiece); model work: batched forwards with the copy back; scoring: bi's "
               "fused pair cosine; writing: formatting the rows (the writes themselves, in a thread, fall under rest)")
