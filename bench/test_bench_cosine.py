"""CPU engine vs its anchors, side by side in one run (pytest-benchmark).

    PYTHONPATH=. python -m pytest bench/test_bench_cosine.py --benchmark-only -q

Top-k: corpus 100k x 384, 2k queries, k=10, fp32, random unit rows: faiss-cpu IndexFlatIP,
sentence_transformers.util.semantic_search, torch mm+topk, ours. Pair cosine: 1M x 384 fp32,
F.cosine_similarity vs ours. int8 activations: per-token quantization of 1,792 x 1,536, torch ops
vs ours. Ratios (anchor time / ours) go into extra_info; the anchors run
first so that the `ours` entries can cite them. faiss's bundled OpenBLAS gets its AVX-512
kernels pinned (workloads.pin_faiss_blas_kernels) so that the anchor is faiss at its best.
"""
import numpy as np
import pytest
import torch

import workloads as w

w.pin_faiss_blas_kernels()  # before faiss loads: see workloads.py
pytest.importorskip("pytest_benchmark")
ROUNDS = 3
best = {}  # name -> best seconds in this run, for the ratios


def run(benchmark, name, fn, *args, rounds=ROUNDS):
    result = benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=0)
    best[name] = benchmark.stats.stats.min
    return result


@pytest.fixture(scope="module")
def topk():
    queries, corpus = w.topk_data()
    index = w.faiss_index(corpus)
    return queries, corpus, index, w.topk_faiss(index, queries)


@pytest.fixture(scope="module")
def pairs():
    return w.pair_data()


def test_topk_faiss(benchmark, topk):
    queries, _, index, _ = topk
    run(benchmark, "faiss", w.topk_faiss, index, queries)
    benchmark.extra_info["queries_per_s"] = w.QUERIES / best["faiss"]


def test_topk_semantic_search(benchmark, topk):
    queries, corpus, _, faiss_ids = topk
    hits = run(benchmark, "semantic_search", w.topk_semantic_search, queries, corpus)
    benchmark.extra_info["ids_agree_with_faiss_pct"] = w.ids_agreement(w.semantic_search_ids(hits), faiss_ids)


def test_topk_torch(benchmark, topk):
    queries, corpus, _, faiss_ids = topk
    ids = run(benchmark, "torch_topk", w.topk_torch, queries, corpus)
    benchmark.extra_info["ids_agree_with_faiss_pct"] = w.ids_agreement(ids, faiss_ids)


def test_topk_ours(benchmark, topk):
    queries, corpus, _, faiss_ids = topk
    ids = run(benchmark, "ours_topk", w.topk_ours, queries, corpus)
    info = benchmark.extra_info
    info["queries_per_s"] = w.QUERIES / best["ours_topk"]
    info["ids_agree_with_faiss_pct"] = w.ids_agreement(ids, faiss_ids)
    for anchor in ("faiss", "semantic_search", "torch_topk"):
        if anchor in best:
            info[f"speedup_vs_{anchor}"] = best[anchor] / best["ours_topk"]


def test_pair_cosine_torch(benchmark, pairs):
    run(benchmark, "torch_pair", w.pair_torch, *pairs)


def test_pair_cosine_read_floor(benchmark, pairs):
    run(benchmark, "read_floor", w.read_floor, *pairs)
    benchmark.extra_info["GB_per_s"] = 2 * pairs[0].numel() * 4 / best["read_floor"] / 1e9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_pair_cosine_ours(benchmark, pairs, dtype):
    a, b = (x.to(dtype) for x in pairs)
    got = run(benchmark, f"ours_pair_{dtype}", w.pair_ours, a, b)
    info = benchmark.extra_info
    info["GB_per_s"] = 2 * a.numel() * a.element_size() / best[f"ours_pair_{dtype}"] / 1e9
    if dtype == torch.float32:
        np.testing.assert_allclose(got[:1000].numpy(), w.pair_torch(a[:1000], b[:1000]).numpy(), atol=1e-5)
        if "torch_pair" in best:
            info["speedup_vs_F_cosine_similarity"] = best["torch_pair"] / best[f"ours_pair_{dtype}"]
        if "read_floor" in best:
            info["time_vs_read_floor"] = best[f"ours_pair_{dtype}"] / best["read_floor"]


def test_quantize_rows_torch(benchmark):
    run(benchmark, "torch_quantize", w.quantize_torch, w.activation_data(), rounds=50)  # milliseconds each


def test_quantize_rows_ours(benchmark):
    x = w.activation_data()
    q, _, _ = run(benchmark, "ours_quantize", w.quantize_ours, x, rounds=50)
    assert (q.int() - w.quantize_torch(x)[0].int()).abs().max() <= 1  # the same rows, up to a rounding step
    if "torch_quantize" in best:
        benchmark.extra_info["speedup_vs_torch"] = best["torch_quantize"] / best["ours_quantize"]
