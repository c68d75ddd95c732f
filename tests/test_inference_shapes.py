"""Inference batches padded to a device's few shapes (models.INFERENCE_MULTIPLES, used on CUDA)
give the scores of the packer's own batches, row for row. Run on the CPU by giving it CUDA's multiples."""
import numpy as np
import torch

from test_fit import pairs_of_mixed_lengths
from transenc import models
from transenc.models import BiEncoder, CrossEncoder


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
