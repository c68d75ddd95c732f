"""Packing every STS-B pair (train + dev + test, 8,628 pairs over 15,487 unique sentences) into
model-ready tensors: the C++ packer over a TokenCache vs the HF fast tokenizer on the same pairs.

    PYTHONPATH=. python -m pytest bench/test_bench_packing.py --benchmark-columns=min,median,rounds

The HF baseline is `tokenizer(a_list, b_list, padding=True, truncation=True, max_length=L,
return_tensors="pt")`: one padded batch, tokenizing every sentence of every pair. The packer gives
length-sorted token-budget batches from ids tokenized once; `ratio` is HF time / packer time, and
`ratio_with_cache` counts the one-time cache build against the packer too (a single pass).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tests.test_packing import bert_tokenizer, load_sts
from transenc.packing import pack_pairs, padding_efficiency
from transenc.tokens import TokenCache

MAX_LENGTH = 64  # the reference cross-encoder's max length
TOKEN_BUDGET = 8192


def best_of(fn, rounds=3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.fixture(scope="module")
def sts():
    pairs, sentences, idx = load_sts()
    tok = bert_tokenizer()
    first, second = [a for a, _ in pairs], [b for _, b in pairs]

    def hf():
        return tok(first, second, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")

    hf_out = hf()
    hf_seconds = best_of(hf)
    return dict(tok=tok, sentences=sentences, idx=idx, hf=hf, hf_seconds=hf_seconds,
                hf_efficiency=float(hf_out["attention_mask"].float().mean()))


def test_hf_tokenizer_pairs(benchmark, sts):
    benchmark.pedantic(sts["hf"], rounds=3, iterations=1)
    benchmark.extra_info.update(pairs=len(sts["idx"]), padding_efficiency=round(sts["hf_efficiency"], 4))


def test_cpp_packer_pairs(benchmark, sts):
    cache_seconds = best_of(lambda: TokenCache(sts["tok"], sts["sentences"]))
    cache = TokenCache(sts["tok"], sts["sentences"])
    batches = benchmark(pack_pairs, cache, sts["idx"], MAX_LENGTH, TOKEN_BUDGET)
    packer = benchmark.stats.stats.min
    benchmark.extra_info.update(
        pairs=len(sts["idx"]),
        batches=len(batches),
        padding_efficiency=round(padding_efficiency(batches), 4),
        pairs_per_s=round(len(sts["idx"]) / packer),
        hf_seconds=round(sts["hf_seconds"], 4),
        ratio=round(sts["hf_seconds"] / packer, 1),
        cache_seconds=round(cache_seconds, 4),
        ratio_with_cache=round(sts["hf_seconds"] / (packer + cache_seconds), 2),
    )


def test_token_cache(benchmark, sts):
    """The one-time cost: tokenizing the 15,487 unique sentences (no special tokens, untruncated)."""
    tok, sentences = sts["tok"], sts["sentences"]
    cache = benchmark.pedantic(TokenCache, args=(tok, sentences), rounds=3, iterations=1)
    hf_call = best_of(lambda: tok(sentences, add_special_tokens=False)["input_ids"])
    benchmark.extra_info.update(
        sentences=len(cache), tokens=int(cache.offsets[-1]),
        hf_call_seconds=round(hf_call, 4), speedup_vs_hf_call=round(hf_call / benchmark.stats.stats.min, 2),
    )
    assert cache.ids.dtype == np.int32 and torch.from_numpy(cache.ids).numel() == cache.offsets[-1]
