"""Dropout of CPU training steps on the engine (transenc.dropout, csrc/dropout.h): its masks' law, its
output and gradient against torch on fresh random inputs, its seeds drawn from torch's generator, and
the fit running it."""
import numpy as np
import pytest
import torch
from torch import nn

from transenc import _C, fit, ops
from transenc.dropout import EngineDropout, engine_dropout

SIZES = [1, 3, 4, 5, 1023, 4097]  # below, at and past a word of four draws, and odd


@pytest.mark.parametrize("p", [0.03, 0.1, 0.5])
def test_a_mask_drops_each_element_with_probability_p_apart_from_its_neighbours(p, engine_variant):
    n = 1 << 20
    keep = ops.dropout_mask(20261207, n, p).numpy().astype(np.float64)
    dropped = round(p * 65536) / 65536
    sigma = (dropped * (1 - dropped) / n) ** 0.5
    assert abs((1 - keep.mean()) - dropped) < 5 * sigma
    # the four draws of a word, and neighbouring words, are uncorrelated (5 sigma of a correlation: 5 / sqrt(n))
    for lag in (1, 2, 3, 4, 5):
        assert abs(np.corrcoef(keep[:-lag], keep[lag:])[0, 1]) < 5 / n ** 0.5
    # each position of a word drops alike
    for position in range(4):
        assert abs((1 - keep[position::4].mean()) - dropped) < 5 * sigma * 2


def splitmix64_mask(seed: int, count: int, threshold: int) -> list[int]:
    """csrc/dropout.h's mask as it documents it, in Python's integers."""
    mask, m = [], (1 << 64) - 1
    for i in range(count):
        z = (seed + (i // 4 + 1) * 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        mask.append(int(((z >> (16 * (i % 4))) & 0xFFFF) >= threshold))
    return mask


@pytest.mark.parametrize("seed", [0, 2021, 2 ** 62 - 1])
def test_a_mask_is_the_documented_hash(seed, engine_variant):
    assert ops.dropout_mask(seed, 11, 0.5).tolist() == splitmix64_mask(seed, 11, 32768)


def test_a_mask_depends_on_its_seed_and_the_element_alone_on_every_variant(engine_variant):
    want = {n: ops.dropout_mask(7, n, 0.5) for n in SIZES}
    _C.set_variant("baseline")
    for n in SIZES:
        assert torch.equal(ops.dropout_mask(7, n, 0.5), want[n])  # the same draws on every variant
        assert torch.equal(want[n], want[SIZES[-1]][:n])  # a prefix of a longer mask
    other = ops.dropout_mask(8, SIZES[-1], 0.5)
    assert 0.4 < (other != want[SIZES[-1]]).float().mean() < 0.6  # another seed, other draws
    assert ops.dropout_mask(7, 1000, 0).all()  # p = 0 keeps all
    for p in (1.0, 1 - 2 ** -18, -0.1):  # the second rounds to 1 in steps of 1/65,536
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            ops.dropout_mask(7, 10, p)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_scale_is_torchs_product_with_the_mask(n, dtype, engine_variant):
    """x * (keep ? scale : 0): fp32 exactly torch's fp32 product; bf16 that product of the widened value,
    rounded to bf16 (to nearest even), as csrc/dropout.h says; a NaN stays NaN where it is dropped, as in
    torch's x * mask."""
    g = torch.Generator().manual_seed(n)
    x = (torch.randn(n, generator=g) * 10).to(dtype)
    if n > 2:
        x[1] = float("nan")
    keep = (torch.rand(n, generator=g) > 0.3).to(torch.uint8)
    if n > 2:
        keep[1] = 0
    scale = 1 / 0.9
    got = ops.masked_scale(x.view(1, n), keep, scale)
    assert got.dtype == dtype and got.shape == (1, n)
    factor = torch.where(keep.bool(), torch.tensor(scale, dtype=torch.float32), torch.tensor(0.0))
    if dtype == torch.float32:
        want = x * factor
    else:
        want = (x.float() * factor).to(torch.bfloat16)
    assert torch.equal(got.view(-1).isnan(), want.isnan()) and (n <= 2 or got.view(-1)[1].isnan())
    finite = ~want.isnan()
    assert torch.equal(got.view(-1)[finite], want[finite])


def test_masked_scale_refuses_what_it_does_not_take():
    keep = torch.ones(4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="CPU float32 or bfloat16"):
        ops.masked_scale(torch.ones(4, dtype=torch.float64), keep, 2.0)
    out = np.empty(4, dtype=np.float32)
    with pytest.raises(ValueError, match="differ in size"):
        _C.masked_scale(np.ones(4, dtype=np.float32), "f32", np.ones(3, dtype=np.uint8), 2.0, out)
    with pytest.raises(ValueError, match="uint8"):
        _C.masked_scale(np.ones(4, dtype=np.float32), "f32", np.ones(4, dtype=np.int32), 2.0, out)
    with pytest.raises(ValueError, match="kind"):
        _C.masked_scale(np.ones(4, dtype=np.float16), "f16", keep.numpy(), 2.0, np.empty(4, dtype=np.float16))
    with pytest.raises(ValueError, match="does not match kind"):
        _C.masked_scale(np.ones(4, dtype=np.int16), "f32", keep.numpy(), 2.0, out)
    with pytest.raises(ValueError, match="threshold"):
        _C.dropout_mask(1, 4, 65536)


def test_engine_dropout_drops_and_scales_as_nn_dropout_and_its_gradient_follows_the_mask():
    layer = EngineDropout(0.2).train()
    x = (torch.randn(37, 129, generator=torch.Generator().manual_seed(1)) + 3).requires_grad_()  # no zeros of its own
    torch.manual_seed(3)
    y = layer(x)
    kept = y != 0
    assert abs((1 - kept.float().mean().item()) - 0.2) < 0.03
    assert torch.equal(y[kept], x[kept] * (1 / 0.8))
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(kept, g * (1 / 0.8), torch.zeros(())))
    # seeds from torch's generator: manual_seed replays a mask, the next call draws another
    torch.manual_seed(3)
    again = layer(x)
    assert torch.equal(again, y) and not torch.equal(layer(x), y)
    # eval, p = 0 or 1 and tensors the engine does not take are nn.Dropout's
    assert torch.equal(layer.eval()(x), x)
    layer.train()
    assert torch.equal(EngineDropout(0.0).train()(x), x)
    assert not EngineDropout(1.0).train()(x).any()
    assert layer(x.double()).dtype == torch.float64


def test_engine_dropout_swaps_a_models_dropouts_for_the_block_and_puts_them_back(tiny_bert):
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu", "mean", 24)
    model = encoder.model
    originals = [m for m in model.modules() if type(m) is nn.Dropout]
    assert originals
    model.train()
    with engine_dropout(model):
        assert not any(type(m) is nn.Dropout for m in model.modules())
        engines = [m for m in model.modules() if isinstance(m, EngineDropout)]
        assert len(engines) == len(originals) and [m.p for m in engines] == [m.p for m in originals]
        assert all(m.training for m in engines)
        model.eval()  # a dev check inside a fit
    after = [m for m in model.modules() if type(m) is nn.Dropout]
    assert after == originals and not any(m.training for m in after)  # the mode the model left them in
    assert not any(isinstance(m, EngineDropout) for m in model.modules())


def test_a_cpu_fit_drops_on_the_engine_and_replays_under_its_seed(tiny_bert, monkeypatch):
    """A fit on the CPU drops on the engine (each hidden-state dropout of each forward), and the same seed
    gives the same fit: the masks' seeds come from torch's generator."""
    from transenc.models import BiEncoder
    from transenc.pairset import PairSetBuilder
    from transenc.recipes import FitConfig

    builder = PairSetBuilder()
    for i in range(24):
        builder.add(f"sentence {i} about the sea", f"a line {i} on rain and roads")
    pairs = builder.build()
    labels = np.linspace(0, 1, len(pairs.pairs)).astype(np.float32)
    cfg = FitConfig(batch_size=8, epochs=1, lr=1e-3, warmup=0.1, precision="fp32")
    masks, real = [], ops.dropout_mask
    monkeypatch.setattr(ops, "dropout_mask", lambda seed, count, p: masks.append(count) or real(seed, count, p))
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = BiEncoder.load(tiny_bert, "cpu", "mean", 24)
        fit.fit_bi(encoder, encoder.token_cache(pairs.sentences), pairs.pairs, labels, cfg, seed=0)
        weights.append(torch.cat([p.detach().flatten() for p in encoder.model.parameters()]))
    assert masks and all(count > 0 for count in masks)
    assert torch.equal(weights[0], weights[1])
