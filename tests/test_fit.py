"""A training step cut into length-sorted sub-batches has the loss and gradient of the plain
padded batch that sentence-transformers would build with the tokenizer, in input order."""
import numpy as np
import pytest
import torch

from transenc import fit
from transenc.models import BiEncoder, CrossEncoder
from transenc.packing import pack_pairs, pack_sentences
from transenc.pairset import PairSetBuilder
from transenc.train import demo_pairs_path


def pairs_of_mixed_lengths(n: int, rng):
    """Pairs of demo-corpus words cut to 2..20 words, so a padded batch is far from full."""
    words = demo_pairs_path().read_text().split()
    builder = PairSetBuilder()
    for _ in range(n):
        a, b = (" ".join(words[(s := rng.integers(0, len(words) - 20)):s + rng.integers(2, 21)]) for _ in range(2))
        builder.add(a, b)
    return builder.build()


def loss_and_gradient(model, compute_loss):
    model.zero_grad(set_to_none=True)
    loss = compute_loss()
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_sub_batched_step_equals_one_plain_padded_batch(kind, tiny_bert):
    torch.manual_seed(1)
    rng = np.random.default_rng(3)
    corpus = pairs_of_mixed_lengths(40, rng)
    texts = [corpus.pair_texts(i) for i in range(len(corpus))]
    targets = torch.from_numpy(rng.uniform(0, 1, len(corpus)).astype(np.float32))
    if kind == "cross":
        encoder, step_loss, plain_loss = CrossEncoder.load(tiny_bert, "cpu", 48), fit.cross_step_loss, fit.cross_step_loss_reference
        cache = encoder.token_cache(corpus.sentences)
        parts = pack_pairs(cache, corpus.pairs, 48, len(corpus) * 48, min_efficiency=fit.STEP_MIN_EFFICIENCY)
    else:
        encoder, step_loss, plain_loss = BiEncoder.load(tiny_bert, "cpu", "mean", 24), fit.bi_step_loss, fit.bi_step_loss_reference
        cache = encoder.token_cache(corpus.sentences)
        parts = pack_sentences(cache, corpus.pairs.reshape(-1), 24, corpus.pairs.size * 24,
                               min_efficiency=fit.STEP_MIN_EFFICIENCY)
    assert len(parts) > 1  # the step really is cut into several sub-batches
    encoder.model.eval()  # no dropout: both ways must then agree to rounding
    loss_plain, grad_plain = loss_and_gradient(encoder.model, lambda: plain_loss(encoder, texts, targets))
    loss_cut, grad_cut = loss_and_gradient(encoder.model, lambda: step_loss(encoder, cache, corpus.pairs, targets))
    assert loss_cut == pytest.approx(loss_plain, rel=1e-5)
    assert torch.allclose(grad_cut, grad_plain, rtol=1e-4, atol=1e-6)
    assert grad_plain.abs().max() > 0
