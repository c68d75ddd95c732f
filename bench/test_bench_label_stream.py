"""A huge pairs file through `transenc label` in bounded memory, beside what bounds it (the disk
writing the output alone, the engine's scanner reading the file); fills label-stream-<cpu>.md.

    python -m pytest bench/test_bench_label_stream.py -q -s      # on an idle machine
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import workloads as w
from transenc.bundled import DEMO_PAIRS
from transenc.readers import PairReader

pytest.importorskip("pytest_benchmark")
PAIRS = int(os.environ.get("TRANSENC_BENCH_LABEL_PAIRS", 10_000_000))
UNIQUE = 2000
SLACK_MIB = 300  # the bound: the big run's peak within this of the small run's
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

TITLE = "A huge pairs file through `transenc label`"
HEADER = ["run", "seconds", "pairs/s", "peak RSS MiB"]


def table_rows(measured: dict) -> list[list]:
    """measured: run -> (pairs, seconds, peak RSS MiB or None)."""
    return [[run, f"{s:.1f}", f"{n / s:,.0f}" if n else "-", f"{rss:.0f}" if rss else "-"]
            for run, (n, s, rss) in measured.items()]


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
    """(seconds, peak RSS in MiB) of `transenc label` as its own process, its peak read by a wrapper
    (RUSAGE_CHILDREN: neither pytest nor earlier children count); without `out`, its output discarded."""
    command = [sys.executable, "-c", _PEAK, sys.executable, "-m", "transenc", "label", "--pairs", str(pairs), "--device", "cpu"]
    start = time.perf_counter()
    done = subprocess.run(command + (["--out", str(out)] if out else []), check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(done.stdout) / 1024


def npy_seconds(pairs, out) -> float:
    seconds = label_peak(pairs, out)[0]
    assert np.load(out, mmap_mode="r").shape == (PAIRS,)
    out.unlink()
    return seconds


def write_synced(path, size):  # `size` bytes in 8 MiB blocks, synced: the disk alone writing the output
    with open(path, "wb") as f:
        for _ in range(0, size, 8 << 20):
            f.write(bytes(8 << 20))
        os.fsync(f.fileno())


def test_stream_in_bounded_memory(benchmark, table, tmp_path):
    small, big, out = tmp_path / "small.tsv", tmp_path / "big.tsv", tmp_path / "big.out.tsv"
    write_pairs_file(small, 1000)
    write_pairs_file(big, PAIRS)
    small_s, small_rss = label_peak(small, tmp_path / "small.out.tsv")
    big_s, big_rss = w.timed(benchmark, label_peak, big, out)
    with open(out, "rb") as f:
        assert sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b"")) == PAIRS
    out_bytes = out.stat().st_size
    out.unlink()
    table.measured.update({
        "`transenc label`, 1,000 pairs (process)": (0, small_s, small_rss),
        f"`transenc label`, {PAIRS:,} pairs (process)": (PAIRS, big_s, big_rss),
        "the same, output to standard output, discarded": (PAIRS, label_peak(big)[0], None),
        "the same, output `.npy` (the scores alone, 4 bytes a pair)": (PAIRS, npy_seconds(big, tmp_path / "big.npy"), None),
        f"the disk alone: writing the output's {out_bytes / 2**20:,.0f} MiB (synced)":
            (0, w.seconds(lambda: write_synced(tmp_path / "floor.bin", out_bytes)), None),
        "reading alone, engine scanner (in process)":
            (PAIRS, w.seconds(lambda: [0 for _ in PairReader(big).chunks(65536)]), None)})
    (tmp_path / "floor.bin").unlink()
    table.note(f"{PAIRS:,} pairs over {UNIQUE:,} unique sentences, {big.stat().st_size / 2**20:,.0f} MiB of TSV; bi "
               "mode, all-MiniLM-L6-v2, default precision; output to a file on the same disk")
    table.note(f"big run's peak RSS {big_rss - small_rss:+.0f} MiB over the 1,000-pair run's (bound: {SLACK_MIB})")
    assert big_rss - small_rss < SLACK_MIB
