"""Packing STS-B's unique pairs into model-ready tensors: the C++ packer over a TokenCache against the
HF fast tokenizer (one padded batch of every pair); fills bench/results/packing-<cpu>.md.

    python -m pytest bench/test_bench_packing.py -q -s
"""
import numpy as np
import pytest
from transformers import AutoTokenizer

import workloads as w
from transenc.packing import pack_pairs, padding_efficiency
from transenc.tokens import TokenCache

pytest.importorskip("pytest_benchmark")
MAX_LENGTH, TOKEN_BUDGET = w.REFERENCE.cross_max_length, 8192  # the reference cross-encoder's; the packer's default
HF_PAIRS, PACKER = "HF tokenizer, every pair, one padded batch", "C++ packer over a TokenCache (`pack_pairs`)"
CACHE, HF_SENTENCES = "TokenCache build (one-time)", "HF tokenizer on the unique sentences, no special tokens"

TITLE = "Packing pairs: the C++ packer against the HF fast tokenizer"
HEADER = ["what", "ms", "padding efficiency", "note"]


def table_rows(measured: dict) -> list[list]:
    """measured: what -> (best seconds, padding efficiency); "pairs": how many were packed."""
    seconds = {what: value[0] for what, value in measured.items() if what != "pairs"}
    if CACHE in seconds and PACKER in seconds:
        seconds["cache + packer"] = seconds[CACHE] + seconds[PACKER]
    ratio = lambda a, b: f"{seconds[a] / seconds[b]:,.2f}x" if a in seconds and b in seconds else "-"  # noqa: E731
    rate = f"; {measured['pairs'] / seconds[PACKER] / 1e6:.1f}M pairs/s" if PACKER in seconds else ""
    notes = {HF_PAIRS: "anchor", PACKER: f"{ratio(HF_PAIRS, PACKER)} faster than the HF call{rate}",
             CACHE: f"cache + packer: {ratio(HF_PAIRS, 'cache + packer')} faster than the HF call",
             HF_SENTENCES: f"the cache build is {ratio(HF_SENTENCES, CACHE)} faster"}
    return [[what, f"{seconds[what] * 1e3:,.2f}", measured[what][1], note] for what, note in notes.items()
            if what in seconds]


@pytest.fixture(scope="module")
def sts(sts_pairs, table):
    table.measured["pairs"] = len(sts_pairs)
    table.note(f"{len(sts_pairs):,} pairs over {len(sts_pairs.sentences):,} unique sentences; all-MiniLM-L6-v2's "
               f"tokenizer, max length {MAX_LENGTH}, token budget {TOKEN_BUDGET:,}; best of each benchmark's rounds")
    table.note("the packer's rows equal the HF tokenizer's token for token (tests/test_packing.py)")
    return sts_pairs, AutoTokenizer.from_pretrained(str(w.minilm_path()))


def test_hf_tokenizer_pairs(benchmark, table, sts):
    pairs, tokenizer = sts
    first, second = zip(*(pairs.pair_texts(i) for i in range(len(pairs))))
    out = w.timed(benchmark, tokenizer, list(first), list(second), rounds=3, padding=True, truncation=True,
                  max_length=MAX_LENGTH, return_tensors="pt")
    table.measured[HF_PAIRS] = (benchmark.stats.stats.min, f"{float(out['attention_mask'].float().mean()):.3f}")


def test_token_cache(benchmark, table, sts):
    pairs, tokenizer = sts
    cache = w.timed(benchmark, TokenCache, tokenizer, pairs.sentences, rounds=3)
    assert cache.ids.dtype == np.int32 and len(cache) == len(pairs.sentences)
    table.measured[CACHE] = (benchmark.stats.stats.min, "")


def test_hf_tokenizer_sentences(benchmark, table, sts):
    pairs, tokenizer = sts
    w.timed(benchmark, tokenizer, pairs.sentences, add_special_tokens=False, rounds=3)
    table.measured[HF_SENTENCES] = (benchmark.stats.stats.min, "")


def test_cpp_packer_pairs(benchmark, table, sts):
    pairs, tokenizer = sts
    batches = benchmark(pack_pairs, TokenCache(tokenizer, pairs.sentences), pairs.pairs, MAX_LENGTH, TOKEN_BUDGET)
    table.measured[PACKER] = (benchmark.stats.stats.min, f"{padding_efficiency(batches):.3f} ({len(batches)} batches)")
