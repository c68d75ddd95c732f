"""The CPU engine against its anchors, side by side in one run; writes bench/results/cpu-engine-<cpu>.md.

    python -m pytest bench/test_bench_engine.py --benchmark-only -q -p no:randomly

Top-k: corpus 100k x 384, 2k queries, k=10, fp32, random unit rows: faiss-cpu IndexFlatIP,
sentence_transformers.util.semantic_search, torch mm + topk, ours; faiss and ours once more on one
thread each, and faiss as installed (OpenBLAS picking its own kernels, in a fresh process). Pair
cosine: 1M x 384, F.cosine_similarity and the memory read floor against ours (fp32, fp16, bf16).
int8 activations: per-token quantization of 1,792 x 1,536, torch ops against ours. Each contender's
best of ROUNDS; anchors run first. Peak memory: a fresh process per contender (`workloads.py probe`).
faiss's bundled OpenBLAS gets its AVX-512 kernels pinned (workloads.pin_faiss_blas_kernels).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workloads as w
from results_writer import write_table

BLAS_CORE = w.pin_faiss_blas_kernels()  # before faiss loads
pytest.importorskip("pytest_benchmark")
ROUNDS = 3
BEST: dict[str, float] = {}  # contender -> best seconds in this run
IDS: dict[str, np.ndarray] = {}  # top-k contender -> its ids


def timed(benchmark, name, fn, *args, rounds=ROUNDS):
    result = benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=0)
    BEST[name] = benchmark.stats.stats.min
    return result


def workloads_process(*argv, env=None) -> dict:
    """`python bench/workloads.py ARGV` in a fresh process: its last line, as JSON."""
    done = subprocess.run([sys.executable, w.__file__, *argv], check=True, capture_output=True, text=True,
                          env=env or os.environ)
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"said": done.stdout + done.stderr}


@pytest.fixture(scope="module")
def topk():
    queries, corpus = w.topk_data()
    yield queries, corpus, w.faiss_index(corpus)
    write_results()


@pytest.fixture(scope="module")
def pairs():
    return w.pair_data()


def test_topk_faiss(benchmark, topk):
    queries, _, index = topk
    IDS["faiss"] = timed(benchmark, "faiss", w.topk_faiss, index, queries)


def test_topk_semantic_search(benchmark, topk):
    queries, corpus, _ = topk
    IDS["semantic_search"] = timed(benchmark, "semantic_search", w.topk_semantic_search, queries, corpus).numpy()


def test_topk_torch(benchmark, topk):
    queries, corpus, _ = topk
    IDS["torch"] = timed(benchmark, "torch", w.topk_torch, queries, corpus)[1].numpy()


def test_topk_ours(benchmark, topk):
    queries, corpus, _ = topk
    IDS["ours"] = timed(benchmark, "ours", w.topk_ours, queries, corpus)
    for anchor in ("faiss", "semantic_search", "torch"):
        if anchor in BEST:
            benchmark.extra_info[f"speedup_vs_{anchor}"] = BEST[anchor] / BEST["ours"]


@pytest.mark.parametrize("who", ["faiss", "ours"])
def test_topk_one_thread(benchmark, topk, who):
    """Like for like: faiss and torch with one OpenMP thread, ours with one worker."""
    import faiss

    queries, corpus, index = topk
    threads = faiss.omp_get_max_threads(), torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    os.environ["TRANSENC_THREADS"] = "1"
    try:
        if who == "faiss":
            timed(benchmark, "faiss 1 thread", w.topk_faiss, index, queries, rounds=max(1, ROUNDS - 1))
        else:
            timed(benchmark, "ours 1 thread", w.topk_ours, queries, corpus, rounds=max(1, ROUNDS - 1))
    finally:
        faiss.omp_set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
        del os.environ["TRANSENC_THREADS"]


def test_pair_cosine_torch(benchmark, pairs):
    timed(benchmark, "torch pair", w.pair_torch, *pairs)


def test_pair_cosine_read_floor(benchmark, pairs):
    timed(benchmark, "read floor", w.read_floor, *pairs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_pair_cosine_ours(benchmark, pairs, dtype):
    a, b = (x.to(dtype) for x in pairs)
    got = timed(benchmark, f"ours pair {dtype}", w.pair_ours, a, b)
    if dtype == torch.float32:
        np.testing.assert_allclose(got[:1000].numpy(), w.pair_torch(a[:1000], b[:1000]).numpy(), atol=1e-5)


def test_quantize_rows_torch(benchmark):
    timed(benchmark, "torch quantize", w.quantize_torch, w.activation_data(), rounds=50)  # milliseconds each


def test_quantize_rows_ours(benchmark):
    x = w.activation_data()
    q, _, _ = timed(benchmark, "ours quantize", w.quantize_ours, x, rounds=50)
    assert (q.int() - w.quantize_torch(x)[0].int()).abs().max() <= 1  # the same rows, up to a rounding step


# ---- the table -------------------------------------------------------------------------------

def write_results() -> None:
    if not {"faiss", "semantic_search", "torch", "ours", "torch pair", "ours pair torch.float32"} <= set(BEST):
        return  # a partial run (-k): no table
    import faiss
    import sentence_transformers

    from transenc import _C

    size = f"corpus {w.CORPUS:,} x {w.DIM}, {w.QUERIES:,} queries, k={w.K}, fp32"
    qps = lambda s: f"{w.QUERIES / s:,.0f} q/s"  # noqa: E731
    mem = {name: workloads_process("probe", name)["extra_mb"] for name in
           ("topk:faiss", "topk:semantic_search", "topk:torch", "topk:ours", "pair:torch", "pair:ours")}
    rows = [["exact cosine top-k", size, label, BEST[name], BEST["ours"],
             f"anchor {w.ids_agreement(IDS[name], IDS['faiss']):.2f} / ours {w.ids_agreement(IDS['ours'], IDS['faiss']):.2f}",
             f"anchor {mem['topk:' + name]:,.0f} / ours {mem['topk:ours']:,.0f}",
             f"ours {qps(BEST['ours'])} ({2 * w.CORPUS * w.QUERIES * w.DIM / BEST['ours'] / 1e9:.0f} GFLOP/s); "
             f"anchor {qps(BEST[name])}"]
            for name, label in (("faiss", f"faiss-cpu IndexFlatIP (OPENBLAS_CORETYPE={BLAS_CORE})"),
                                ("semantic_search", "sentence_transformers util.semantic_search"),
                                ("torch", "torch mm + topk (4,096-query chunks)"))]
    if "ours 1 thread" in BEST and "faiss 1 thread" in BEST:
        rows.append(["exact cosine top-k, 1 thread each", size,
                     "faiss-cpu IndexFlatIP as above, omp 1 thread; ours TRANSENC_THREADS=1", BEST["faiss 1 thread"],
                     BEST["ours 1 thread"], "(as above)", "",
                     f"ours {qps(BEST['ours 1 thread'])}; anchor {qps(BEST['faiss 1 thread'])}"])
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"} | {"OPENBLAS_VERBOSE": "2"}
    installed = workloads_process("faiss-as-installed", str(ROUNDS), env=env)
    cores = sorted({line.split(":", 1)[1].strip() for line in installed["said"].splitlines() if line.startswith("Core:")})
    rows.append(["exact cosine top-k", size, f"faiss-cpu IndexFlatIP as installed (OpenBLAS auto-detected cores: "
                 f"{', '.join(cores) or '?'})", installed["faiss"], installed["ours"], "", "",
                 f"ours {qps(installed['ours'])}; anchor {qps(installed['faiss'])} (separate process)"])
    pair_size, fp32_bytes = f"{w.PAIRS:,} pairs x {w.DIM}", 2 * w.PAIRS * w.DIM * 4
    gbs = lambda nbytes, s: f"{nbytes / s / 1e9:.1f} GB/s"  # noqa: E731
    ours, f16, bf16 = (BEST[f"ours pair torch.{t}"] for t in ("float32", "float16", "bfloat16"))
    rows += [["pair cosine", pair_size + ", fp32", "torch F.cosine_similarity", BEST["torch pair"], ours, "",
              f"anchor {mem['pair:torch']:,.0f} / ours {mem['pair:ours']:,.0f}",
              f"ours {gbs(fp32_bytes, ours)}, anchor {gbs(fp32_bytes, BEST['torch pair'])}"],
             ["pair cosine vs reading the inputs", pair_size + ", fp32", "torch a.sum() + b.sum() (memory read floor)",
              BEST["read floor"], ours, "", "", f"floor {gbs(fp32_bytes, BEST['read floor'])}"],
             ["pair cosine, fp16 / bf16 inputs", pair_size + ", fp16 / bf16 (no fp32 copy)", "ours on the fp32 inputs",
              ours, bf16, "", "", f"fp16 {f16 * 1e3:,.0f} ms ({gbs(fp32_bytes / 2, f16)}), "
                                  f"bf16 {bf16 * 1e3:,.0f} ms ({gbs(fp32_bytes / 2, bf16)})"]]
    if "torch quantize" in BEST and "ours quantize" in BEST:
        rows.append(["int8 activations, per-token", f"{w.TOKENS:,} x {w.FFN:,} fp32", "torch aminmax + round + clamp",
                     BEST["torch quantize"], BEST["ours quantize"], "", "", "best of 50"])
    mm = w.matmul_rates(ROUNDS)
    notes = [f"`python -m pytest bench/test_bench_engine.py --benchmark-only -q -p no:randomly`: best of {ROUNDS} "
             "rounds per contender in one process; peak extra memory in a fresh process per contender: peak RSS "
             "(VmHWM) after the call minus peak RSS once the inputs exist (faiss's includes the copy of the corpus "
             "IndexFlatIP keeps)",
             f"faiss-cpu {faiss.__version__}, sentence-transformers {sentence_transformers.__version__}; engine threads "
             f"{_C.threads()}, variant {_C.variant()}; faiss's bundled OpenBLAS with OPENBLAS_CORETYPE={BLAS_CORE} "
             "(workloads.pin_faiss_blas_kernels); the row 'as installed' lets OpenBLAS pick its kernels itself",
             "Data: random normal rows (numpy seed 0 / 1); top-k rows L2-normalised so IndexFlatIP is cosine",
             "speed-up: anchor time / ours time",
             f"torch.mm 4096 x 384 x 1536: fp32 {mm['fp32']:.0f} GFLOP/s, bf16 {mm['bf16']:.0f} GFLOP/s"]
    header = ["what", "size", "anchor", "anchor ms", "ours ms", "speed-up", "ids = faiss, % of queries (anchor / ours)",
              "peak extra memory, MB (anchor / ours)", "notes"]
    table = [[what, sz, anchor, f"{a * 1e3:,.1f}", f"{o * 1e3:,.1f}", f"{a / o:.2f}x", ids, m, extra]
             for what, sz, anchor, a, o, ids, m, extra in rows]
    print(write_table("cpu-engine", "CPU engine: `transenc._C` against its anchors", notes, header, table))
