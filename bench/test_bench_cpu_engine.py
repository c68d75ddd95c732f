"""The CPU engine (exact top-k, pair cosine, int8 activations) against its anchors, side by side in
one run; fills bench/results/cpu-engine-<cpu>.md. Run as a script (`... faiss`), this file prints one
contender's peak extra memory.

    python -m pytest bench/test_bench_cpu_engine.py -q -s
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workloads as w
from transenc import ops, reference
from transenc.precision import cpu_flags

# faiss-cpu's bundled OpenBLAS takes CPUs it does not know for 'Prescott' (4.8x slower than ours on the AMD EPYC of
# 2026-12-01): its AVX-512 kernels, pinned as faiss loads, make the anchor faiss at its best.
BLAS_CORE = os.environ.get("OPENBLAS_CORETYPE") or ("SkylakeX" if "avx512f" in cpu_flags() else "auto-detected")
pytest.importorskip("pytest_benchmark")
ROUNDS = 3
CORPUS, QUERIES, DIM, K = 100_000, 2_000, 384, 10  # exact top-k: the anchor workload of ../shared/DESIGN.md
PAIRS = 1_000_000  # pair cosine: 1M pairs of 384-d rows
TOKENS, FFN = 32 * 56, 1536  # int8 activations: a MiniLM FFN's input for a batch of 32 pairs of ~56 tokens

TOPK = {"faiss": lambda q, c, index: index.search(q.numpy(), K)[1],  # contender(queries, corpus, faiss index) -> ids
        "semantic_search": lambda q, c, index: w.topk_semantic_search(q, c, K),
        "torch": lambda q, c, index: w.topk_torch(q, c, K), "ours": lambda q, c, index: ops.cosine_topk(q, c, K)[1]}
PAIR = {"torch pair": lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=1),
        "read floor": lambda a, b: (a.sum(), b.sum()),  # reading both inputs once: the memory-bandwidth floor
        "ours pair fp32": ops.pair_cosine, "ours pair fp16": ops.pair_cosine, "ours pair bf16": ops.pair_cosine}
PROBED = ["faiss", "semantic_search", "torch", "ours", "torch pair", "ours pair fp32"]

TITLE = "CPU engine: `transenc._C` against its anchors"
HEADER = ["what", "size", "anchor", "anchor ms", "ours ms", "speed-up", "ids = faiss, % of queries (anchor / ours)",
          "peak extra memory, MB (anchor / ours)"]
TOPK_SIZE, PAIR_SIZE = f"corpus {CORPUS:,} x {DIM}, {QUERIES:,} queries, k={K}, fp32", f"{PAIRS:,} pairs x {DIM}"
COMPARISONS = [  # (what, size, the anchor, its contender, ours)
    ("exact cosine top-k", TOPK_SIZE, f"faiss-cpu IndexFlatIP (OPENBLAS_CORETYPE={BLAS_CORE})", "faiss", "ours"),
    ("exact cosine top-k", TOPK_SIZE, "sentence_transformers util.semantic_search", "semantic_search", "ours"),
    ("exact cosine top-k", TOPK_SIZE, "torch mm + topk (4,096-query chunks)", "torch", "ours"),
    ("exact cosine top-k, 1 thread each", TOPK_SIZE, "faiss-cpu IndexFlatIP, omp 1 thread; ours TRANSENC_THREADS=1",
     "faiss 1 thread", "ours 1 thread"),
    ("pair cosine", PAIR_SIZE + ", fp32", "torch F.cosine_similarity", "torch pair", "ours pair fp32"),
    ("pair cosine vs reading the inputs", PAIR_SIZE + ", fp32", "torch a.sum() + b.sum() (the memory read floor)",
     "read floor", "ours pair fp32"),
    *[(f"pair cosine, {t} inputs", f"{PAIR_SIZE}, {t} (no fp32 copy)", "ours on the fp32 inputs", "ours pair fp32",
       f"ours pair {t}") for t in ("fp16", "bf16")],
    ("int8 activations, per-token", f"{TOKENS:,} x {FFN:,} fp32", "torch aminmax + round + clamp", "torch quantize",
     "ours quantize")]


def table_rows(measured: dict) -> list[list]:
    """measured: best, contender -> seconds; ids, contender -> top-k ids; memory, contender -> MB."""
    best, ids, memory = (measured.get(key, {}) for key in ("best", "ids", "memory"))
    same = lambda name: 100 * float(np.mean(np.all(np.asarray(ids[name]) == np.asarray(ids["faiss"]), axis=1)))  # noqa: E731
    ms = lambda name: f"{best[name] * 1e3:,.1f}" if name in best else "-"  # noqa: E731
    speedup = lambda anchor, ours: f"{best[anchor] / best[ours]:.2f}x" if {anchor, ours} <= best.keys() else "-"  # noqa: E731
    return [[what, size, anchor_name, ms(anchor), ms(ours), speedup(anchor, ours),
             f"anchor {same(anchor):.2f} / ours {same(ours):.2f}" if {"faiss", anchor, ours} <= ids.keys() else "",
             f"anchor {memory[anchor]:,.0f} / ours {memory[ours]:,.0f}" if {anchor, ours} <= memory.keys() else ""]
            for what, size, anchor_name, anchor, ours in COMPARISONS if anchor in best or ours in best]


def random_rows(seed: int, *counts: int, unit: bool = False) -> list[torch.Tensor]:
    """Random normal fp32 rows of DIM; unit: L2-normalised in place, in chunks (no temporary inflates the peak)."""
    rng, tensors = np.random.default_rng(seed), []
    for n in counts:
        x = rng.standard_normal((n, DIM), dtype=np.float32)
        for i in range(0, n if unit else 0, 8192):
            x[i:i + 8192] /= np.linalg.norm(x[i:i + 8192], axis=1, keepdims=True)
        tensors.append(torch.from_numpy(x))
    return tensors


def import_faiss():
    """faiss, its OpenBLAS pinned to BLAS_CORE while it loads (read then): set for the whole process, the
    variable would reach every other benchmark's subprocesses too."""
    pin = BLAS_CORE != "auto-detected" and "OPENBLAS_CORETYPE" not in os.environ
    if pin:
        os.environ["OPENBLAS_CORETYPE"] = BLAS_CORE
    try:
        import faiss
    finally:
        if pin:
            del os.environ["OPENBLAS_CORETYPE"]
    return faiss


def faiss_index(corpus: torch.Tensor):
    faiss = import_faiss()
    index = faiss.IndexFlatIP(DIM)
    index.add(corpus.numpy())  # rows are unit length: inner product = cosine
    return index


def record(benchmark, table, name: str, fn, *args, rounds: int = ROUNDS):
    result = w.timed(benchmark, fn, *args, rounds=rounds)
    table.measured.setdefault("best", {})[name] = benchmark.stats.stats.min
    return result


@pytest.fixture(scope="module")
def topk(table):
    import sentence_transformers

    from transenc import _C

    table.note(f"faiss-cpu {import_faiss().__version__}, sentence-transformers {sentence_transformers.__version__}; engine "
               f"threads {_C.threads()}, variant {_C.variant()}; best of {ROUNDS} rounds per contender (one thread: of {max(1, ROUNDS - 1)}; int8: of 50); "
               "speed-up: anchor time / ours time; random normal rows (numpy seed 0 / 1), top-k rows L2-normalised "
               "(IndexFlatIP is cosine); peak memory: VmHWM after the call minus VmHWM once the inputs exist, in a "
               "fresh process (faiss's includes the copy of the corpus IndexFlatIP keeps)")
    corpus, queries = random_rows(0, CORPUS, QUERIES, unit=True)
    return queries, corpus, faiss_index(corpus)


@pytest.mark.parametrize("contender", TOPK)
def test_topk(benchmark, table, topk, contender):
    table.measured.setdefault("ids", {})[contender] = record(benchmark, table, contender, TOPK[contender], *topk)


@pytest.mark.parametrize("contender", ["faiss", "ours"])
def test_topk_one_thread(benchmark, table, topk, contender, monkeypatch):
    """Like for like: faiss and torch with one OpenMP thread, ours with one worker."""
    faiss = import_faiss()

    threads = faiss.omp_get_max_threads(), torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    monkeypatch.setenv("TRANSENC_THREADS", "1")
    try:
        record(benchmark, table, f"{contender} 1 thread", TOPK[contender], *topk, rounds=max(1, ROUNDS - 1))
    finally:
        faiss.omp_set_num_threads(threads[0])
        torch.set_num_threads(threads[1])


@pytest.fixture(scope="module")
def pairs():
    return random_rows(1, PAIRS, PAIRS)


@pytest.mark.parametrize("contender", PAIR)
def test_pair_cosine(benchmark, table, pairs, contender):
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(contender[-4:], torch.float32)
    a, b = (x.to(dtype) for x in pairs)
    got = record(benchmark, table, contender, PAIR[contender], a, b)
    if contender == "ours pair fp32":
        np.testing.assert_allclose(got[:1000].numpy(), PAIR["torch pair"](a[:1000], b[:1000]).numpy(), atol=1e-5)


@pytest.mark.parametrize("contender", ["torch quantize", "ours quantize"])
def test_quantize_rows(benchmark, table, contender):
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((TOKENS, FFN), dtype=np.float32))
    q = record(benchmark, table, contender, quantize_torch if contender.startswith("torch") else ops.quantize_rows, x,
               rounds=50)[0]  # milliseconds each
    assert (q.double() - reference.quantize_rows_reference(x)[0]).abs().max() <= 1  # up to a rounding step


def quantize_torch(x: torch.Tensor):
    """Per-token asymmetric int8, as ops.quantize_rows makes it, in plain fp32 torch ops: the timed anchor."""
    low, high = torch.aminmax(x, dim=1)
    scale = (high - low) / 255
    q = (torch.round((x - low[:, None]) / scale.clamp_min(1e-30)[:, None]).clamp_(0, 255) - 128).to(torch.int8)
    return q, scale, low + 128 * scale


@pytest.mark.parametrize("contender", PROBED)
def test_peak_memory(table, contender):
    done = subprocess.run([sys.executable, __file__, contender], check=True, capture_output=True, text=True)
    table.measured.setdefault("memory", {})[contender] = json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # the peak memory, in MB, one contender adds over its inputs
    # VmHWM, this process's peak resident memory: a child's ru_maxrss starts from its parent's size at fork
    peak_mb = lambda: int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024  # noqa: E731
    name = sys.argv[1]
    inputs = random_rows(1, PAIRS, PAIRS) if name in PAIR else random_rows(0, CORPUS, QUERIES, unit=True)[::-1]
    base = peak_mb()
    PAIR[name](*inputs) if name in PAIR else TOPK[name](*inputs, faiss_index(inputs[1]) if name == "faiss" else None)
    print(json.dumps(peak_mb() - base))
