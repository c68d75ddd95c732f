"""A huge pairs file through `transenc label` in bounded memory, beside what bounds it (the disk
writing the output alone, the engine's scanner reading the file); and a file of unique sentences,
whose embeddings live in a file (beside --out, or in TMPDIR; in TMPDIR for the Python API's
transenc.label too), beside sentence-transformers holding them in memory.
Fills label-stream-<cpu>.md.

    python -m pytest bench/test_bench_label_stream.py -q -s      # on an idle machine
"""
import os
import sys

import numpy as np
import pytest

import workloads as w
from transenc.bundled import DEMO_PAIRS
from transenc.readers import PairReader

pytest.importorskip("pytest_benchmark")
PAIRS = int(os.environ.get("TRANSENC_BENCH_LABEL_PAIRS", 10_000_000))
UNIQUE = 2000
UNIQUE_PAIRS = int(os.environ.get("TRANSENC_BENCH_UNIQUE_PAIRS", 250_000))  # every sentence in one pair only
SLACK_MIB = 300  # the bound: the big run's peak within this of the small run's

TITLE = "A huge pairs file through `transenc label`"
HEADER = ["run", "seconds", "pairs/s", "peak RSS MiB", "peak own memory MiB"]
# the Python API, as a notebook would call it
_API = ("import sys, numpy, transenc; "
        "numpy.save(sys.argv[3], transenc.label(sys.argv[1], model=sys.argv[2], device='cpu', precision='fp32'))")


def table_rows(measured: dict) -> list[list]:
    """measured: run -> (pairs, seconds, peak RSS MiB or None[, peak own memory MiB])."""
    def mib(x):
        return f"{x:,.0f}" if x else "-"
    return [[run, f"{s:.1f}", f"{n / s:,.0f}" if n else "-", mib(rss), mib(own[0] if own else None)]
            for run, (n, s, rss, *own) in measured.items()]


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


def label_peak(pairs, out=None) -> tuple[float, float, float]:
    """(seconds, peak RSS, peak own memory) of `transenc label` as its own process (w.own_memory_peak);
    without `out`, its output discarded."""
    return w.own_memory_peak(w.label_command(pairs, *(["--out", out] if out else [])), f"{pairs}.log")


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
    small_run = label_peak(small, tmp_path / "small.out.tsv")
    big_run = w.timed(benchmark, label_peak, big, out)
    small_rss, big_rss = small_run[1], big_run[1]
    with open(out, "rb") as f:
        assert sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b"")) == PAIRS
    out_bytes = out.stat().st_size
    out.unlink()
    table.measured.update({
        "`transenc label`, 1,000 pairs (process)": (0, *small_run),
        f"`transenc label`, {PAIRS:,} pairs (process)": (PAIRS, *big_run),
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


def test_unique_sentences_in_bounded_memory(benchmark, table, tmp_path):
    # MiniLM's shape (384 dimensions) with one layer: the embeddings take MiniLM's room, the encoding is quicker
    model, rng = w.random_bert(tmp_path / "model", num_hidden_layers=1), np.random.default_rng(0)
    small = w.write_unique_pairs(tmp_path / "small.tsv", 1000, 12, rng)
    pairs = w.write_unique_pairs(tmp_path / "unique.tsv", UNIQUE_PAIRS, 12, rng)

    def ours(pairs, *out):
        return w.label_command(pairs, "--model", model, "--precision", "fp32", *out)

    theirs = [sys.executable, "-c", w.ST_PAIR_COSINES, str(pairs), str(model), str(tmp_path / "theirs.npy"), "128"]
    base = w.own_memory_peak(ours(small), tmp_path / "small.log")
    to_file = w.timed(benchmark, w.own_memory_peak, ours(pairs, "--out", tmp_path / "ours.npy"),
                      tmp_path / "ours.log")
    to_stdout = w.own_memory_peak(ours(pairs), tmp_path / "stdout.log")
    api = w.own_memory_peak([sys.executable, "-c", _API, str(pairs), str(model), str(tmp_path / "api.npy")],
                          tmp_path / "api.log")
    anchor = w.own_memory_peak(theirs, tmp_path / "theirs.log")
    agree = float(np.abs(np.load(tmp_path / "ours.npy") - np.load(tmp_path / "theirs.npy")).max())
    n, embeddings_mib = UNIQUE_PAIRS, 2 * UNIQUE_PAIRS * 384 * 4 / 2**20
    table.measured.update({
        "`transenc label`, 1,000 pairs of unique sentences, to standard output (process)": (1000, *base),
        f"`transenc label --out F.npy`, {n:,} pairs of unique sentences (process)": (n, *to_file),
        "the same, to standard output (the embeddings in TMPDIR)": (n, *to_stdout),
        "`transenc.label(F)` in Python, returning the scores (the embeddings in TMPDIR)": (n, *api),
        "anchor: sentence-transformers `encode` + cosine, in memory (process)": (n, *anchor)})
    table.note(f"unique sentences: {2 * n:,} sentences, each in one pair; MiniLM's shape (384 dimensions) with one "
               f"layer of random weights, fp32; the embeddings alone take {embeddings_mib:,.0f} MiB; scores within "
               f"{agree:.1e} of the anchor's")
    table.note("own memory: RssAnon, the process's pages that no file backs; RSS counts the mapped file's pages too, "
               "which the kernel writes back and frees when memory is short")
    assert agree < 1e-4 and np.array_equal(np.load(tmp_path / "api.npy"), np.load(tmp_path / "ours.npy"))
    if embeddings_mib >= 500:  # smaller, the fixed costs outweigh the embeddings and this says nothing
        for run in (to_file, to_stdout, api):  # the embeddings are not in its own memory
            assert run[2] - base[2] < embeddings_mib
