"""Where the time of a whole `transenc label` process goes, bi and cross.

    python bench/label_breakdown.py [--pairs FILE] [--runs 2] [--model DIR] [--device cuda] [--out FILE.md]

Each run is a fresh interpreter that imports transenc.cli, wraps the library's own functions with
timers and calls `transenc.cli.main(["label", ...])`, so the phases are those of the real command:
interpreter start (to the first line of the script), imports (the modules `transenc label`
uses), argparse (building the parser: it imports transenc.training for the train command), reading
(the streaming pair reader's iterations: both passes over the file in bi mode), writing (formatting
each output row; the buffered file writes fall under rest), model load (including the transformers
import it triggers, and on a GPU the CUDA start, also shown on its own), tokenizing (TokenCache: every tokenizer call over the
sentences), model work (batched forwards, with the copy back), scoring (bi: the fused pair
cosine), and what is left (the buffered file writes and the command's exit, which skips the
interpreter's finalization). A plain `transenc label` process is timed beside it for the
total. Default input: STS-B test (1,379 pairs), so the fixed costs are not buried under model work.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workloads as w

CHILD = r"""
import json, sys, time
t_first = time.time()
t0 = time.perf_counter()
import transenc.cli, transenc.distributed, transenc.labeling, transenc.readers, transenc.writers, transenc.tokens, transenc.models, transenc.ops
times = {"imports": time.perf_counter() - t0}
calls = {}

def timed(owner, name, phase):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times[phase] = times.get(phase, 0.0) + time.perf_counter() - start
            calls[phase] = calls.get(phase, 0) + 1
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
                times[phase] = times.get(phase, 0.0) + time.perf_counter() - start
            yield item
    setattr(owner, name, wrapper)

timed(transenc.cli, "build_parser", "argparse")
timed_iteration(transenc.readers.PairReader, "__iter__", "reading")
timed(transenc.labeling, "load_scorer", "model load")
timed(transenc.tokens.TokenCache, "__init__", "tokenizing")
timed(transenc.models._Encoder, "_run", "model work")
timed(transenc.ops, "pair_cosine_indexed", "scoring")
timed(transenc.writers, "score_line", "writing")  # per row: calls counts rows
import torch.cuda  # its lazy start (context, libraries) happens inside model load: timed apart
timed(torch.cuda, "_lazy_init", "cuda start")
t_main = time.perf_counter()
code = transenc.cli.main(sys.argv[1:])
times["main"] = time.perf_counter() - t_main
print(json.dumps({"first_line": t_first, "times": times, "calls": calls, "code": code}))
transenc.distributed.exit_now(code)  # the command's own way out (transenc.cli.run)
"""


def one_run(argv: list[str]) -> dict:
    start = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True)
    total = time.time() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    t = report["times"]
    phases = {"interpreter start": report["first_line"] - start, "imports": t["imports"]}
    for name in ("argparse", "reading", "model load", "tokenizing", "model work", "scoring", "writing"):
        phases[name] = t.get(name, 0.0)
    # what no phase covers: the buffered file writes and the interpreter's exit
    phases["rest (file writes, exit)"] = total - sum(phases.values())
    phases["of model load: cuda start"] = t.get("cuda start", 0.0)
    return {"phases": phases, "total": total, "calls": report["calls"]}


def plain_run(argv: list[str]) -> float:
    start = time.time()
    subprocess.run([sys.executable, "-m", "transenc", *argv], capture_output=True, check=True)
    return time.time() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", default=None, help="pairs file (default: STS-B test from ../shared or TRANSENC_STS_DIR)")
    p.add_argument("--runs", type=int, default=2, help="runs per mode; the median of each phase is reported")
    p.add_argument("--out", default=None, help="append the table to this markdown file")
    p.add_argument("--label", default="", help="a name for this measurement in the table's heading")
    p.add_argument("--model", default=None, help="model directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    pairs = a.pairs or str(w.sts_dir() / "sts-test.csv")
    lines = [f"### `transenc label` {a.label} ({Path(pairs).name}, {a.device}, {a.runs} runs each, median s)", "",
             "| phase | bi | cross |", "|---|---:|---:|"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("bi", "cross"):
            argv = ["label", "--pairs", pairs, "--mode", mode, "--device", a.device, "--out", f"{tmp}/{mode}.tsv"]
            argv += ["--model", a.model] if a.model else []
            runs = [one_run(argv) for _ in range(a.runs)]
            plain = [plain_run(argv) for _ in range(a.runs)]
            results[mode] = {name: statistics.median(r["phases"][name] for r in runs) for name in runs[0]["phases"]}
            results[mode]["total (instrumented)"] = statistics.median(r["total"] for r in runs)
            results[mode]["total (plain process)"] = statistics.median(plain)
            results[mode]["calls"] = runs[0]["calls"]
    for name in results["bi"]:
        if name != "calls":
            lines.append(f"| {name} | {results['bi'][name]:.2f} | {results['cross'][name]:.2f} |")
    lines += ["", f"calls per phase: bi {results['bi']['calls']}, cross {results['cross']['calls']}", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
