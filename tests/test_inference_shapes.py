"""Inference batches' shapes: padded to a device's few shapes (models.INFERENCE_MULTIPLES, used on
CUDA) they give the scores of the packer's own batches, row for row (run on the CPU by giving it
CUDA's multiples); on a CPU they hold at most models.CPU_BATCH_TOKENS."""
import numpy as np
import torch

from test_fit import pairs_of_mixed_lengths
from transenc import models
from transenc.bundled import DEMO_PAIRS
from transenc.cli import build_parser
from transenc.models import BiEncoder, CrossEncoder
from transenc.pairset import PairSetBuilder


def assert_few_shapes(batches, max_length):
    rows, tokens = models.INFERENCE_MULTIPLES["cuda"]
    for b in batches:
        r, w = b.input_ids.shape
        assert r % rows == 0 and (w % tokens == 0 or w == max_length)
    assert any(b.input_ids.shape[0] > len(b.rows) for b in batches)  # padding rows are really there


def test_padded_inference_batches_give_the_same_scores(tiny_bert, monkeypatch):
    corpus = pairs_of_mixed_lengths(150, np.random.default_rng(7))
    bi, cross = BiEncoder.load(tiny_bert, "cpu", "mean", 24), CrossEncoder.load(tiny_bert, "cpu", 40)
    packed_embeddings = bi.encode(corpus.sentences, batch_size=16, precision="fp32", show_progress=False)
    packed_scores = cross.predict(corpus.sentences, corpus.pairs, batch_size=16, precision="fp32", show_progress=False)

    monkeypatch.setitem(models.INFERENCE_MULTIPLES, "cpu", models.INFERENCE_MULTIPLES["cuda"])
    cache = bi.token_cache(corpus.sentences)
    assert_few_shapes(bi.batches(cache, np.arange(len(cache), dtype=np.int32), 16), 24)
    assert_few_shapes(cross.batches(cross.token_cache(corpus.sentences), corpus.pairs, 16), 40)
    torch.testing.assert_close(bi.encode(corpus.sentences, batch_size=16, precision="fp32", show_progress=False),
                               packed_embeddings, atol=1e-5, rtol=0)
    np.testing.assert_allclose(cross.predict(corpus.sentences, corpus.pairs, batch_size=16, precision="fp32",
                                             show_progress=False), packed_scores, atol=1e-5, rtol=0)


def texts_of(words: int, n: int, rng) -> list[str]:
    corpus = DEMO_PAIRS.read_text().split()
    return [" ".join(corpus[(s := rng.integers(0, len(corpus) - words)):s + words]) for _ in range(n)]


def test_on_a_cpu_a_batch_of_long_rows_holds_at_most_cpu_batch_tokens(tiny_bert, monkeypatch):
    rng = np.random.default_rng(5)
    long_texts, short_texts = texts_of(200, 300, rng), texts_of(3, 300, rng)
    bi, cross = BiEncoder.load(tiny_bert, "cpu", "mean", 128), CrossEncoder.load(tiny_bert, "cpu", 128)
    builder = PairSetBuilder()
    for a, b in zip(long_texts[::2], long_texts[1::2]):
        builder.add(a, b)
    long_pairs = builder.build()

    def shapes(batches):
        return [tuple(b.input_ids.shape) for b in batches]

    def sentence_batches(texts, batch_size=128):
        cache = bi.token_cache(texts)
        return shapes(bi.batches(cache, np.arange(len(cache), dtype=np.int32), batch_size))

    def pair_batches():
        return shapes(cross.batches(cross.token_cache(long_pairs.sentences), long_pairs.pairs, 64))

    for batches in (sentence_batches(long_texts), pair_batches()):  # 128 (64) rows of 128 tokens, capped
        assert all(width == 128 for _, width in batches)
        assert max(rows * width for rows, width in batches) == models.CPU_BATCH_TOKENS
    short = sentence_batches(short_texts)  # a few tokens a row: 128 rows fit the cap, batched as without it
    monkeypatch.setattr(models, "CPU_BATCH_TOKENS", 10**9)
    assert sentence_batches(short_texts) == short and sentence_batches(long_texts)[0] == (128, 128)
    monkeypatch.undo()

    for encoder in (bi, cross):  # on a GPU, no cap: batch_size rows of these (even) lengths, padded to its multiples
        monkeypatch.setattr(encoder, "device", torch.device("cuda"))
    assert {rows for rows, _ in sentence_batches(long_texts)} == {128, 64}
    assert {rows for rows, _ in pair_batches()} == {64, 32}
    assert f"{models.CPU_BATCH_TOKENS:,} tokens" in " ".join(build_parser()._subparsers._group_actions[0]
                                                           .choices["label"].format_help().split())


def test_a_small_batch_size_is_honoured_on_short_rows(tiny_bert):
    """--batch-size 4 on rows far shorter than max_length: batches of about 4 rows, where room for one
    row of max_length (the packer's old rule) made them ~20 rows."""
    rng = np.random.default_rng(11)
    texts = texts_of(6, 200, rng)
    bi = BiEncoder.load(tiny_bert, "cpu", "mean", 256)
    cache = bi.token_cache(texts)
    for batch_size in (1, 4, 16):
        rows = [len(b.rows) for b in bi.batches(cache, np.arange(len(cache), dtype=np.int32), batch_size)]
        assert sum(rows) == len(texts)
        assert batch_size * 0.5 <= np.mean(rows) <= batch_size * 1.5, (batch_size, rows)
    embeddings = bi.encode(texts, batch_size=4, precision="fp32", show_progress=False)
    torch.testing.assert_close(embeddings, bi.encode(texts, batch_size=128, precision="fp32", show_progress=False),
                               atol=1e-5, rtol=0)
