"""Streaming `transenc label`: speed and peak memory of a 10M-pair file against a 1,000-pair file
over the same 2,000 unique sentences, each labeled by a child process with all-MiniLM-L6-v2 in bi
mode; and, in process, one reading of the big file by the Python parsers (the reference) against the
engine's scanner. Writes bench/results/label-stream-<cpu>.md.

    python -m pytest bench/test_bench_label_stream.py --benchmark-only -q -s

TRANSENC_BENCH_LABEL_PAIRS sets the large file's size (default 10,000,000; ~113 bytes a pair).
Peak RSS is the child's, read by a fresh wrapper process through getrusage(RUSAGE_CHILDREN), so
neither pytest nor earlier children count.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from results_writer import write_table
from transenc.bundled import DEMO_PAIRS
from transenc.readers import PairReader

pytest.importorskip("pytest_benchmark")
PAIRS = int(os.environ.get("TRANSENC_BENCH_LABEL_PAIRS", 10_000_000))
UNIQUE = 2000
SLACK_MIB = 300  # the bound: the big run's peak within this of the small run's
_MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
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
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "transenc", "label",
                           "--pairs", str(pairs), *(["--out", str(out)] if out else []), "--device", "cpu"],
                          check=True, capture_output=True, text=True)
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


def test_label_10m_pairs_fast_in_bounded_memory(benchmark, tmp_path):
    small, big = tmp_path / "small.tsv", tmp_path / "big.tsv"
    write_pairs_file(small, 1000)
    write_pairs_file(big, PAIRS)
    small_s, small_rss = label_peak(small, tmp_path / "small.out.tsv")
    big_s, big_rss = benchmark.pedantic(label_peak, args=(big, tmp_path / "big.out.tsv"), rounds=1, iterations=1)
    with open(tmp_path / "big.out.tsv", "rb") as f:
        rows = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
    assert rows == PAIRS
    out_bytes = (tmp_path / "big.out.tsv").stat().st_size
    (tmp_path / "big.out.tsv").unlink()
    discarded_s, _ = label_peak(big)
    disk_s = disk_write_seconds(tmp_path / "floor.bin", out_bytes)
    python_s, scanner_s = reading_seconds(big)
    benchmark.extra_info.update(pairs=PAIRS, seconds=round(big_s, 1), peak_rss_mib=round(big_rss),
                                small_seconds=round(small_s, 1), small_peak_rss_mib=round(small_rss))
    mib = big.stat().st_size / 2**20
    rows = [["`transenc label`, 1,000 pairs (process)", f"{small_s:.1f}", "-", f"{small_rss:.0f}"],
            [f"`transenc label`, {PAIRS:,} pairs (process)", f"{big_s:.1f}", f"{PAIRS / big_s:,.0f}", f"{big_rss:.0f}"],
            ["the same, output to standard output, discarded", f"{discarded_s:.1f}", f"{PAIRS / discarded_s:,.0f}", "-"],
            [f"the disk alone: writing the output's {out_bytes / 2**20:,.0f} MiB (synced)", f"{disk_s:.1f}", "-", "-"],
            ["reading alone, Python parsers (in process)", f"{python_s:.1f}", f"{PAIRS / python_s:,.0f}", "-"],
            ["reading alone, engine scanner (in process)", f"{scanner_s:.1f}", f"{PAIRS / scanner_s:,.0f}", "-"]]
    notes = [f"{PAIRS:,} pairs over {UNIQUE:,} unique sentences, {mib:,.0f} MiB of TSV; bi mode, all-MiniLM-L6-v2, "
             "default precision; output to a file on the same disk",
             f"big run's peak RSS {big_rss - small_rss:+.0f} MiB over the 1,000-pair run's (bound: {SLACK_MIB})",
             "regenerate: `python -m pytest bench/test_bench_label_stream.py --benchmark-only -q -s` (idle machine)"]
    print("\n" + "\n".join(f"{r[0]}: {r[1]} s, {r[2]} pairs/s, peak RSS {r[3]} MiB" for r in rows))
    print(write_table("label-stream", "A huge pairs file through `transenc label`", notes,
                      ["run", "seconds", "pairs/s", "peak RSS MiB"], rows))
    assert big_rss - small_rss < SLACK_MIB
