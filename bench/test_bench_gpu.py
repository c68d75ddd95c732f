"""pytest-benchmark microbenchmarks of the Triton kernels next to their torch baselines.

Needs a CUDA device; without one every benchmark is skipped. Run with
`python -m pytest bench/test_bench_gpu.py` (bench/ is outside the default test paths).
Sizes are moderate (1M pairs x 384; 200k x 384 corpus, 4,096 queries, k = 10) so that a run takes
seconds; bench/gpu_bench.py has the full-size comparison.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from source_tree import use_source_tree  # noqa: E402

use_source_tree()
from transenc.kernels import cosine_topk as ct  # noqa: E402
from transenc.kernels import pair_cosine as pc  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


@pytest.fixture(scope="module")
def pairs():
    gen = torch.Generator(device="cuda").manual_seed(0)
    return (torch.randn(1_000_000, 384, device="cuda", generator=gen),
            torch.randn(1_000_000, 384, device="cuda", generator=gen))


@pytest.fixture(scope="module")
def search():
    gen = torch.Generator(device="cuda").manual_seed(1)
    corpus = torch.randn(200_000, 384, device="cuda", generator=gen).half()
    queries = torch.randn(4096, 384, device="cuda", generator=gen).half()
    return queries, corpus


def test_pair_cosine_triton(benchmark, pairs):
    benchmark(synced(lambda: pc.pair_cosine(*pairs)))


def test_pair_cosine_torch(benchmark, pairs):
    benchmark(synced(lambda: F.cosine_similarity(*pairs, dim=1)))


def test_pair_cosine_indexed_triton(benchmark, pairs):
    table = pairs[0]
    idx = torch.randint(0, table.shape[0], (1_000_000, 2), device="cuda", dtype=torch.int32)
    benchmark(synced(lambda: pc.pair_cosine_indexed(table, idx, check_bounds=False)))


def test_cosine_topk_triton_fp16(benchmark, search):
    queries, corpus = search
    benchmark(synced(lambda: ct.cosine_topk(queries, corpus, 10)))


def test_cosine_topk_torch_fp16(benchmark, search):
    queries, corpus = search
    qn, cn = F.normalize(queries.float(), dim=1).half(), F.normalize(corpus.float(), dim=1).half()
    benchmark(synced(lambda: torch.topk(qn @ cn.T, 10, dim=1)))
