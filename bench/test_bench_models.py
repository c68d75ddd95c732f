"""Cross-encoder predict and bi-encoder encode, ours vs sentence-transformers, same weights, one run.

    python -m pytest bench/test_bench_models.py --benchmark-only -q

Data: the 8,567 unique STS-B pairs (15,487 sentences). Anchor first, so ours can cite its ratio.
"""
import numpy as np
import pytest
import torch

import model_workloads as w

pytest.importorskip("pytest_benchmark")
best = {}


def once(benchmark, name, fn, *args):
    result = benchmark.pedantic(fn, args=args, rounds=1, iterations=1, warmup_rounds=0)
    best[name] = benchmark.stats.stats.min
    return result


@pytest.fixture(scope="module")
def cross():
    return w.cross_models()


@pytest.fixture(scope="module")
def bi():
    return w.bi_models()


def test_cross_sentence_transformers(benchmark, cross, sts_pairs):
    once(benchmark, "st_predict", w.st_predict, cross[1], sts_pairs, 32)


def test_cross_ours_fp32(benchmark, cross, sts_pairs):
    ours = once(benchmark, "ours_predict", w.ours_predict, cross[0], sts_pairs, 64)
    assert np.abs(ours - w.st_predict(cross[1], sts_pairs, 256)).max() < 1e-5
    benchmark.extra_info["pairs_per_s"] = len(sts_pairs) / best["ours_predict"]
    benchmark.extra_info["padding_efficiency"] = w.cross_padding(cross[0], sts_pairs, 64)
    if "st_predict" in best:
        benchmark.extra_info["speedup_vs_st"] = best["st_predict"] / best["ours_predict"]


def test_encode_sentence_transformers(benchmark, bi, sts_pairs):
    once(benchmark, "st_encode", w.st_encode, bi[1], sts_pairs.sentences, 32)


def test_encode_ours_fp32(benchmark, bi, sts_pairs):
    ours = once(benchmark, "ours_encode", w.ours_encode, bi[0], sts_pairs.sentences, 64)
    reference = w.st_encode(bi[1], sts_pairs.sentences[:500], 32)
    assert torch.allclose(torch.nn.functional.normalize(ours[:500], dim=1), reference, atol=1e-5)
    benchmark.extra_info["sentences_per_s"] = len(sts_pairs.sentences) / best["ours_encode"]
    if "st_encode" in best:
        benchmark.extra_info["speedup_vs_st"] = best["st_encode"] / best["ours_encode"]
