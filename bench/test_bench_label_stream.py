"""Streaming `transenc label`: peak memory of a 10M-pair file against a 1,000-pair file over the same
2,000 unique sentences, each labeled by a child process with all-MiniLM-L6-v2 in bi mode.

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

from transenc.bundled import DEMO_PAIRS

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


def label_peak(pairs, out):
    """(seconds, peak RSS in MiB) of `transenc label` as its own process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "transenc", "label",
                           "--pairs", str(pairs), "--out", str(out), "--device", "cpu"],
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(done.stdout.strip()) / 1024


def test_label_10m_pairs_in_bounded_memory(benchmark, tmp_path):
    small, big = tmp_path / "small.tsv", tmp_path / "big.tsv"
    write_pairs_file(small, 1000)
    write_pairs_file(big, PAIRS)
    small_s, small_rss = label_peak(small, tmp_path / "small.out.tsv")
    big_s, big_rss = benchmark.pedantic(label_peak, args=(big, tmp_path / "big.out.tsv"), rounds=1, iterations=1)
    with open(tmp_path / "big.out.tsv", "rb") as f:
        rows = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
    assert rows == PAIRS
    benchmark.extra_info.update(pairs=PAIRS, seconds=round(big_s, 1), peak_rss_mib=round(big_rss),
                                small_seconds=round(small_s, 1), small_peak_rss_mib=round(small_rss))
    print(f"\n1,000 pairs: {small_s:.1f} s, peak RSS {small_rss:.0f} MiB; {PAIRS:,} pairs: {big_s:.1f} s "
          f"({PAIRS / big_s:,.0f} pairs/s), peak RSS {big_rss:.0f} MiB")
    assert big_rss - small_rss < SLACK_MIB
