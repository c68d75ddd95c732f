"""Packing STS-B's 8,567 unique pairs into model-ready tensors: the C++ packer over a TokenCache
against the HF fast tokenizer on the same pairs, in one run; writes bench/results/packing-<cpu>.md.

    python -m pytest bench/test_bench_packing.py --benchmark-only -q -s -p no:randomly

The HF anchor is `tokenizer(a_list, b_list, padding=True, truncation=True, max_length=64,
return_tensors="pt")`: one padded batch, tokenizing every sentence of every pair. The packer gives
length-sorted token-budget batches from ids tokenized once (the TokenCache, timed apart: its
one-time cost, against the tokenizer called on the unique sentences).
"""
import numpy as np
import pytest
from transformers import AutoTokenizer

import workloads as w
from results_writer import write_table
from transenc.packing import pack_pairs, padding_efficiency
from transenc.tokens import TokenCache

pytest.importorskip("pytest_benchmark")
MAX_LENGTH, TOKEN_BUDGET = 64, 8192  # the reference cross-encoder's max length; the packer's default budget
BEST: dict[str, float] = {}
FACTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def sts(sts_pairs):
    tokenizer = AutoTokenizer.from_pretrained(str(w.minilm_path()))
    yield sts_pairs, tokenizer
    if len(BEST) == 4:
        hf, packer, cache, hf_sentences = (BEST[k] for k in ("hf pairs", "packer", "cache", "hf sentences"))
        rows = [["HF tokenizer, every pair, one padded batch", f"{hf * 1e3:,.1f}", FACTS["hf"], "anchor"],
                ["C++ packer over a TokenCache (`pack_pairs`)", f"{packer * 1e3:,.2f}", FACTS["packer"],
                 f"{hf / packer:,.0f}x the HF call; {len(sts_pairs) / packer / 1e6:.1f}M pairs/s"],
                ["TokenCache build (one-time)", f"{cache * 1e3:,.1f}", "", f"cache + packer: {hf / (cache + packer):.2f}x the HF call"],
                ["HF tokenizer on the unique sentences, no special tokens", f"{hf_sentences * 1e3:,.1f}", "",
                 f"the cache build is {hf_sentences / cache:.2f}x faster"]]
        notes = [f"{len(sts_pairs):,} pairs over {len(sts_pairs.sentences):,} unique sentences; all-MiniLM-L6-v2's "
                 f"tokenizer, max length {MAX_LENGTH}, token budget {TOKEN_BUDGET:,}; best of each benchmark's rounds",
                 "the packer's rows equal the HF tokenizer's token for token (tests/test_packing.py)"]
        print(write_table("packing", "Packing pairs: the C++ packer against the HF fast tokenizer", notes,
                          ["what", "ms", "padding efficiency", "note"], rows))


def test_hf_tokenizer_pairs(benchmark, sts):
    pairs, tokenizer = sts
    first, second = zip(*(pairs.pair_texts(i) for i in range(len(pairs))))
    out = benchmark.pedantic(tokenizer, args=(list(first), list(second)), rounds=3, iterations=1,
                             kwargs=dict(padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"))
    BEST["hf pairs"], FACTS["hf"] = benchmark.stats.stats.min, f"{float(out['attention_mask'].float().mean()):.3f}"


def test_token_cache(benchmark, sts):
    pairs, tokenizer = sts
    cache = benchmark.pedantic(TokenCache, args=(tokenizer, pairs.sentences), rounds=3, iterations=1)
    assert cache.ids.dtype == np.int32 and len(cache) == len(pairs.sentences)
    BEST["cache"] = benchmark.stats.stats.min


def test_hf_tokenizer_sentences(benchmark, sts):
    pairs, tokenizer = sts
    benchmark.pedantic(tokenizer, args=(pairs.sentences,), kwargs=dict(add_special_tokens=False), rounds=3, iterations=1)
    BEST["hf sentences"] = benchmark.stats.stats.min


def test_cpp_packer_pairs(benchmark, sts):
    pairs, tokenizer = sts
    batches = benchmark(pack_pairs, TokenCache(tokenizer, pairs.sentences), pairs.pairs, MAX_LENGTH, TOKEN_BUDGET)
    BEST["packer"] = benchmark.stats.stats.min
    FACTS["packer"] = f"{padding_efficiency(batches):.3f} ({len(batches)} batches)"
