"""`transenc label` as whole processes, each beside what bounds it; each part writes
bench/results/<part>-<machine>.md:

- startup: 20 pairs, bi (all-MiniLM-L6-v2) and cross (workloads.trained_cross_encoder), against
  `python -c "import torch, transformers"`; median of 7 fresh processes each, after a warm-up.
- label-stream: a 10M-pair file (TRANSENC_BENCH_LABEL_PAIRS sets the size) against a 1,000-pair
  file over the same 2,000 sentences, bi mode: seconds and the child's peak RSS (read through
  RUSAGE_CHILDREN by a wrapper process, so neither pytest nor earlier children count); beside them
  the disk writing the output alone, and one reading of the file by the Python parsers and by the
  engine's scanner.
- label-breakdown: where a run's time goes, bi and cross. A child wraps the library's own
  functions in timers and calls `transenc.cli.main(["label", ...])`, so the phases are those of the
  real command; a plain process gives the total. Default input STS-B test (1,379 pairs: the fixed
  costs are not buried under model work), bi with all-MiniLM-L6-v2, cross with
  workloads.trained_cross_encoder; bench/gpu_check.sh passes --label-pairs, --label-model,
  --label-cross-model (its cycle's cross-encoder), --bench-device cuda and --label-runs 1.

    python -m pytest bench/test_bench_label.py --benchmark-only -q -s [-k startup|stream|breakdown]
"""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import workloads as w
from results_writer import write_table
from transenc.bundled import DEMO_PAIRS
from transenc.readers import PairReader

pytest.importorskip("pytest_benchmark")
TRANSENC = [sys.executable, "-m", "transenc"]


def label_command(pairs: Path, *args) -> list[str]:
    return [*TRANSENC, "label", "--pairs", str(pairs), *args]


# ---- startup ---------------------------------------------------------------------------------

STARTUP_ROUNDS = 7
STARTUP_BAR = 1.5  # the engine issue's bound: 20 pairs within this many times the imports alone
STARTUP: dict[str, float] = {}


@pytest.fixture(scope="module")
def twenty_pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "pairs.tsv"
    path.write_text("".join(DEMO_PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)[:20]), encoding="utf-8")
    yield path
    if len(STARTUP) == 3:
        anchor = STARTUP["`python -c \"import torch, transformers\"`"]
        notes = [f"median of {STARTUP_ROUNDS} fresh processes each, after one warm-up; default precision (auto)",
                 f"the bound: `transenc label` of 20 pairs within {STARTUP_BAR}x the imports alone",
                 "regenerate: `python -m pytest bench/test_bench_label.py -k startup --benchmark-only -q -s` (idle machine)"]
        print(write_table("startup", "The fixed cost of a `transenc label` process", notes,
                          ["process", "seconds", "vs imports alone"],
                          [[n, f"{s:.2f}", f"{s / anchor:.2f}x"] for n, s in STARTUP.items()]))


@pytest.mark.parametrize("what", ["imports", "bi", "cross"])
def test_startup(benchmark, twenty_pairs, what):
    if what == "imports":
        name, command = "`python -c \"import torch, transformers\"`", [sys.executable, "-c", "import torch, transformers"]
    else:
        name = f"`transenc label`, 20 pairs, {what}"
        model = ["--mode", "cross", "--model", str(w.trained_cross_encoder())] if what == "cross" else []
        command = label_command(twenty_pairs, "--device", "cpu", "--out", str(twenty_pairs.with_suffix(".out.tsv")), *model)
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    benchmark.pedantic(subprocess.run, args=(command,), kwargs={"check": True, "capture_output": True},
                       rounds=STARTUP_ROUNDS, iterations=1)
    STARTUP[name] = benchmark.stats.stats.median


# ---- a huge file in bounded memory -----------------------------------------------------------

STREAM_PAIRS = int(os.environ.get("TRANSENC_BENCH_LABEL_PAIRS", 10_000_000))
UNIQUE = 2000
SLACK_MIB = 300  # the bound: the big run's peak within this of the small run's
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_pairs_file(path, n, seed=0):
    """n pairs drawn uniformly over UNIQUE distinct demo-corpus snippets, written in 1M-pair blocks."""
    rng = np.random.default_rng(seed)
    words = DEMO_PAIRS.read_text().split()
    starts, lengths = rng.integers(0, len(words) - 16, UNIQUE), rng.integers(4, 16, UNIQUE)
    sentences = [" ".join(words[s:s + k]) + f" #{i}" for i, (s, k) in enumerate(zip(starts, lengths))]
    with open(path, "w", encoding="utf-8") as f:
        for at in range(0, n, 1_000_000):
            idx = rng.integers(0, UNIQUE, (min(1_000_000, n - at), 2)).tolist()
            f.writelines(f"{sentences[a]}\t{sentences[b]}\n" for a, b in idx)


def label_peak(pairs, out=None):
    """(seconds, peak RSS in MiB) of `transenc label` as its own process; without `out`, its
    standard output is discarded (the run without the disk's writes)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, *label_command(pairs, "--device", "cpu"),
                           *(["--out", str(out)] if out else [])], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(done.stdout.strip()) / 1024


def disk_write_seconds(path, size):
    """Writing `size` bytes to `path` in 8 MiB blocks, synced: the disk's floor for the output."""
    block = b"x" * (8 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(0, size, len(block)):
            f.write(block)
        os.fsync(f.fileno())
    seconds = time.perf_counter() - t0
    os.unlink(path)
    return seconds


def reading_seconds(path):
    """One pass over the file: the Python parsers' records, and the engine scanner's chunks."""
    t0 = time.perf_counter()
    for _ in PairReader(path):
        pass
    t1 = time.perf_counter()
    for _ in PairReader(path).chunks(65536):
        pass
    return t1 - t0, time.perf_counter() - t1


def test_stream_10m_pairs_in_bounded_memory(benchmark, tmp_path):
    small, big, out = tmp_path / "small.tsv", tmp_path / "big.tsv", tmp_path / "big.out.tsv"
    write_pairs_file(small, 1000)
    write_pairs_file(big, STREAM_PAIRS)
    small_s, small_rss = label_peak(small, tmp_path / "small.out.tsv")
    big_s, big_rss = benchmark.pedantic(label_peak, args=(big, out), rounds=1, iterations=1)
    with open(out, "rb") as f:
        assert sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b"")) == STREAM_PAIRS
    out_bytes = out.stat().st_size
    out.unlink()
    discarded_s, _ = label_peak(big)
    disk_s = disk_write_seconds(tmp_path / "floor.bin", out_bytes)
    python_s, scanner_s = reading_seconds(big)
    n = STREAM_PAIRS
    rows = [["`transenc label`, 1,000 pairs (process)", f"{small_s:.1f}", "-", f"{small_rss:.0f}"],
            [f"`transenc label`, {n:,} pairs (process)", f"{big_s:.1f}", f"{n / big_s:,.0f}", f"{big_rss:.0f}"],
            ["the same, output to standard output, discarded", f"{discarded_s:.1f}", f"{n / discarded_s:,.0f}", "-"],
            [f"the disk alone: writing the output's {out_bytes / 2**20:,.0f} MiB (synced)", f"{disk_s:.1f}", "-", "-"],
            ["reading alone, Python parsers (in process)", f"{python_s:.1f}", f"{n / python_s:,.0f}", "-"],
            ["reading alone, engine scanner (in process)", f"{scanner_s:.1f}", f"{n / scanner_s:,.0f}", "-"]]
    notes = [f"{n:,} pairs over {UNIQUE:,} unique sentences, {big.stat().st_size / 2**20:,.0f} MiB of TSV; bi mode, "
             "all-MiniLM-L6-v2, default precision; output to a file on the same disk",
             f"big run's peak RSS {big_rss - small_rss:+.0f} MiB over the 1,000-pair run's (bound: {SLACK_MIB})",
             "regenerate: `python -m pytest bench/test_bench_label.py -k stream --benchmark-only -q -s` (idle machine)"]
    print(write_table("label-stream", "A huge pairs file through `transenc label`", notes,
                      ["run", "seconds", "pairs/s", "peak RSS MiB"], rows))
    assert big_rss - small_rss < SLACK_MIB


# ---- where the time goes ---------------------------------------------------------------------

PHASES = ("interpreter start", "imports", "argparse", "reading", "model load", "tokenizing", "model work", "scoring",
          "writing", "rest (file writes, exit)", "of model load: cuda start")
_INSTRUMENTED = r"""
import json, sys, time
t_first = time.time()
t0 = time.perf_counter()
import transenc.cli, transenc.distributed, transenc.labeling, transenc.readers, transenc.writers, transenc.tokens, transenc.models, transenc.ops
times = {"imports": time.perf_counter() - t0}
calls = {}

def add(phase, seconds):
    times[phase] = times.get(phase, 0.0) + seconds

def timed(owner, name, phase):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        calls[phase] = calls.get(phase, 0) + 1
        try:
            return original(*args, **kwargs)
        finally:
            add(phase, time.perf_counter() - start)
    setattr(owner, name, wrapper)

def timed_iteration(owner, name, phase):
    # a generator's time is spent in its next() calls, between the consumer's own work
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        items = original(*args, **kwargs)
        calls[phase] = calls.get(phase, 0) + 1
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                add(phase, time.perf_counter() - start)
            yield item
    setattr(owner, name, wrapper)

timed(transenc.cli, "build_parser", "argparse")
timed_iteration(transenc.readers.PairReader, "chunks", "reading")
timed(transenc.labeling, "load_scorer", "model load")
timed(transenc.tokens.TokenCache, "__init__", "tokenizing")
timed(transenc.models._Encoder, "_run", "model work")
timed(transenc.ops, "pair_cosine_indexed", "scoring")
timed(transenc.writers, "score_rows", "writing")  # per chunk
import torch.cuda  # its lazy start (context, libraries) happens inside model load: timed apart
timed(torch.cuda, "_lazy_init", "of model load: cuda start")
code = transenc.cli.main(sys.argv[1:])
print(json.dumps({"first_line": t_first, "times": times, "calls": calls}))
transenc.distributed.exit_now(code)  # the command's own way out (transenc.cli.run)
"""


def instrumented_run(argv: list[str]) -> dict:
    """Phase -> seconds of one instrumented process, and its calls per phase."""
    start = time.time()
    done = subprocess.run([sys.executable, "-c", _INSTRUMENTED, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    total = time.time() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    phases = {name: report["times"].get(name, 0.0) for name in PHASES}
    phases["interpreter start"] = report["first_line"] - start
    # what no phase covers: the buffered file writes and the interpreter's exit
    phases["rest (file writes, exit)"] = total - sum(v for k, v in phases.items() if not k.startswith("of "))
    return {"phases": phases, "total (instrumented)": total, "calls": report["calls"]}


BREAKDOWN: dict[str, dict] = {}


@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_breakdown(benchmark, request, tmp_path, mode):
    option = request.config.getoption
    pairs = option("--label-pairs") or str(w.sts_dir() / "sts-test.csv")
    device, runs = option("--bench-device"), option("--label-runs")
    argv = ["label", "--pairs", pairs, "--mode", mode, "--device", device, "--out", str(tmp_path / "out.tsv")]
    model = option("--label-model") if mode == "bi" else option("--label-cross-model") or str(w.trained_cross_encoder())
    argv += ["--model", model] if model else []
    instrumented = [instrumented_run(argv) for _ in range(runs)]
    benchmark.pedantic(subprocess.run, args=([*TRANSENC, *argv],), kwargs={"check": True, "capture_output": True},
                       rounds=runs, iterations=1)
    BREAKDOWN[mode] = {name: statistics.median(r["phases"][name] for r in instrumented) for name in PHASES}
    BREAKDOWN[mode] |= {"total (instrumented)": statistics.median(r["total (instrumented)"] for r in instrumented),
                        "total (plain process)": benchmark.stats.stats.median, "calls": instrumented[0]["calls"],
                        "model": Path(model).name if model else "all-MiniLM-L6-v2"}
    if len(BREAKDOWN) == 2:
        rows = [[name, f"{BREAKDOWN['bi'][name]:.2f}", f"{BREAKDOWN['cross'][name]:.2f}"]
                for name in BREAKDOWN["bi"] if name not in ("calls", "model")]
        notes = [f"`transenc label` on {Path(pairs).name}, {device}, {runs} run(s) of each, median seconds; bi: "
                 f"{BREAKDOWN['bi']['model']}; cross: {BREAKDOWN['cross']['model']}",
                 f"calls per phase: bi {BREAKDOWN['bi']['calls']}, cross {BREAKDOWN['cross']['calls']}",
                 "reading: the reader's chunks (bi reads its first pass in a thread beside the model load: the two "
                 "overlap); model load includes any transformers import it triggers (none for a BERT checkpoint: "
                 "transenc.bert, transenc.wordpiece); model work: batched forwards with the copy back; scoring: bi's "
                 "fused pair cosine; writing: formatting the rows (the writes themselves, in a thread, fall under rest)",
                 "regenerate: `python -m pytest bench/test_bench_label.py -k breakdown --benchmark-only -q -s`"]
        print(write_table("label-breakdown", "Where the time of a `transenc label` process goes", notes,
                          ["phase", "bi", "cross"], rows, device))
