"""The int8 path (engine ops, Int8Linear, int8 copies of models) against float64, the precision
policy, and agreement of int8 / bf16 with fp32 on the real default model."""
import threading
from pathlib import Path
import time

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from transenc import ops, reference
from transenc.errors import TransencError
from transenc.precision import (check_precision, cpu_auto_precision, cpu_training_precision, inference_precision,
                                module_copy, training_precision)
from transenc import _C
from transenc.quantize import (Int8Linear, PackedBf16Linear, RowMakingLayerNorm, engine_attention,
                               engine_feed_forward, engine_self_attention, int8_kernel, int8_model)

SHAPES = [(1, 1), (3, 5), (17, 33), (64, 384), (129, 1537)]  # rows x width: odd, below and above a vector


@pytest.mark.parametrize("n,d", SHAPES)
def test_quantize_rows_matches_float64(n, d, engine_variant):
    g = torch.Generator().manual_seed(n * 1000 + d)
    x = torch.randn(n, d, generator=g) * torch.logspace(-3, 3, n)[:, None] + torch.randn(n, 1, generator=g)
    if n > 2:
        x[1] = 0.25  # a constant row: scale 0, offset the value
    q, scale, offset = ops.quantize_rows(x)
    q_ref, scale_ref, offset_ref = reference.quantize_rows_reference(x)
    assert q.dtype == torch.int8 and scale.dtype == offset.dtype == torch.float32
    np.testing.assert_allclose(scale.double(), scale_ref, rtol=1e-6)
    # offset = min + 128 * scale in float32: off by ulps of each term
    assert ((offset.double() - offset_ref).abs() <= 1e-4 * scale_ref + 1e-6 * offset_ref.abs()).all()
    diff = (q.double() - q_ref).abs()
    assert diff.max() <= 1
    # a one-step difference only where (x - min) / scale lies within float32 rounding of a half
    steps = (x.double() - x.double().amin(1, keepdim=True)) / scale_ref.clamp_min(1e-300)[:, None]
    assert ((steps - steps.floor() - 0.5).abs()[diff > 0] < 1e-3).all()
    # and what comes back is within half a step (plus that rounding) of x
    error = (q.double() * scale.double()[:, None] + offset.double()[:, None] - x.double()).abs()
    assert (error <= scale.double()[:, None] * 0.5001 + 1e-6 * x.double().abs()).all()


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_dequantize_rows_matches_float64(n, d, with_bias, engine_variant):
    g = torch.Generator().manual_seed(n + d)
    acc = torch.randint(-(2 ** 20), 2 ** 20, (n, d), generator=g, dtype=torch.int32)
    rows, offsets = torch.rand(n, generator=g), torch.randn(n, generator=g)
    cols, sums, bias = torch.rand(d, generator=g), torch.randn(d, generator=g), torch.randn(d, generator=g)
    want = (acc.double() * rows.double()[:, None] * cols.double() + offsets.double()[:, None] * sums.double()
            + (bias.double() if with_bias else 0))
    got = ops.dequantize_rows_(acc.clone(), rows, offsets, cols, sums, bias if with_bias else None)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double(), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,d", SHAPES)
def test_quantize_rows_u8_matches_float64(n, d, engine_variant):
    """The engine matmul's rows: quantize_rows' steps unsigned, rows padded with 0 to a multiple of 4."""
    g = torch.Generator().manual_seed(n * 7 + d)
    x = torch.randn(n, d, generator=g) * torch.logspace(-3, 3, n)[:, None] + torch.randn(n, 1, generator=g)
    if n > 2:
        x[1] = -3.5  # a constant row: scale 0, offset the value
    q, scale, offset = ops.quantize_rows_u8(x)
    q_ref, scale_ref, offset_ref = reference.quantize_rows_reference(x, shift=0)
    assert q.dtype == torch.uint8 and q.shape == (n, (d + 3) // 4 * 4) and (q[:, d:] == 0).all()
    np.testing.assert_allclose(scale.double(), scale_ref, rtol=1e-6)
    np.testing.assert_allclose(offset.double(), offset_ref, rtol=0, atol=0)  # the row's min, as it is
    diff = (q[:, :d].double() - q_ref).abs()
    assert diff.max() <= 1
    assert torch.equal(q[:, :d].int() - 128, ops.quantize_rows(x)[0].int())  # the same steps
    steps = (x.double() - x.double().amin(1, keepdim=True)) / scale_ref.clamp_min(1e-300)[:, None]
    assert ((steps - steps.floor() - 0.5).abs()[diff > 0] < 1e-3).all()


# rows x inputs x outputs: single ones, below and above a tile of 4 rows (AVX2) or 8 (VNNI), a panel of
# 16 outputs or two (VNNI), a step of 4 inputs, and MiniLM's own
MATMULS = [(1, 1, 1), (3, 5, 17), (4, 4, 16), (37, 383, 45), (130, 384, 1536), (7, 1537, 31), (257, 70, 3),
           (8, 12, 32), (9, 66, 33), (23, 9, 64)]


@pytest.mark.parametrize("m,k,n", MATMULS)
def test_engine_int8_matmul_matches_float64(m, k, n, engine_variant):
    """Integer part exact (unit scales: these sums are far below 2^24, exact in fp32), then the epilogue."""
    g = torch.Generator().manual_seed(m * 31 + k * 7 + n)
    q = torch.randint(0, 256, (m, (k + 3) // 4 * 4), generator=g, dtype=torch.uint8)
    q[:, k:] = 0
    w = pair_bounded_weights(g, n, k)
    q[0, :2], w[0, :2] = 255, torch.tensor([64, 64])[:k]  # the extremes: a same-sign pair at INT8_PAIR_MAX
    if k >= 4:
        q[1, 2:4], w[-1, 2:4] = 255, torch.tensor([127, -127])  # and a 127 beside a -127
    packed = ops.pack_int8_weights(w)
    exact = q[:, :k].double() @ w.double().T
    ones_m, ones_n, zeros_m, zeros_n = torch.ones(m), torch.ones(n), torch.zeros(m), torch.zeros(n)
    assert torch.equal(ops.int8_linear(q, k, packed, n, ones_m, zeros_m, ones_n, zeros_n).double(), exact)
    rows, offsets = torch.rand(m, generator=g), torch.randn(m, generator=g)
    cols, sums, bias = torch.rand(n, generator=g) / 100, torch.randn(n, generator=g), torch.randn(n, generator=g)
    got = ops.int8_linear(q, k, packed, n, rows, offsets, cols, sums, bias)
    want = exact * rows.double()[:, None] * cols.double() + offsets.double()[:, None] * sums.double() + bias.double()
    assert got.dtype == torch.float32 and got.shape == (m, n)
    np.testing.assert_allclose(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("count", [1, 15, 16, 17, 4099])
def test_engine_gelu_matches_float64(count, engine_variant):
    """Erf's GELU to within 1.5e-7 |x| (torch's F.gelu is within 3.5e-7), on values from the far negative
    tail (where GELU is a tiny negative number) to large positive ones, zeros, signed tiny ones and the
    ends of the table's quarters (csrc/gelu_table.inc); NaN stays NaN."""
    g = torch.Generator().manual_seed(count)
    x = torch.randn(count, generator=g) * torch.logspace(-3, 1.5, count)
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -3.7, 3.7, -9.0, -13.5, 50.0, -50.0, 1e-3, -6.0,
                            0.25, -0.25, 7.75, 8.0, -8.0, 7.9999995, 1.0 - 2**-24, -1.0 - 2**-23])
    x[: min(count, len(special))] = special[:count]
    got = torch.from_numpy(_C.gelu(x.numpy()))
    want = x.double() * 0.5 * (1 + torch.erf(x.double() / 2**0.5))
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert ((got.double() - want).abs() <= 1.5e-7 * x.double().abs()).all()
    assert torch.from_numpy(_C.gelu(np.full(count, np.nan, dtype=np.float32))).isnan().all()


def layer_norm_inputs(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows with an offset and a spread, a LayerNorm's weight and bias, and a residual to add."""
    g = torch.Generator().manual_seed(n * 7 + d)
    x = torch.randn(n, d, generator=g) * torch.logspace(-2, 2, n)[:, None] + torch.randn(n, 1, generator=g) * 10
    return x, torch.randn(d, generator=g), torch.randn(d, generator=g), torch.randn(n, d, generator=g) * 3


def assert_layer_norm_of(y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """y is LayerNorm(x) (eps 1e-5) to fp32 rounding."""
    want = torch.nn.functional.layer_norm(x.double(), x.shape[-1:], weight.double(), bias.double(), 1e-5)
    assert y.dtype == torch.float32 and y.shape == x.shape
    # the mean of fp32 inputs is only known to a few ulps of itself: relative to a row's spread that
    # moves every output of a row with a large mean and a small spread (torch's fp32 LayerNorm alike)
    spread = x.double().std(1, unbiased=False)[:, None] + 1e-30
    ill = 1e-6 * x.double().mean(1).abs()[:, None] / spread * weight.double().abs()
    assert ((y.double() - want).abs() <= 2e-6 * (1 + want.abs()) + ill).all()


@pytest.mark.parametrize("n,d", SHAPES)
def test_engine_layer_norm_u8_matches_float64(n, d, engine_variant):
    """LayerNorm to fp32 rounding on rows with an offset and a spread, and its output quantized exactly as
    quantize_rows_u8 quantizes it; with a residual, exactly the LayerNorm of the sum."""
    x, weight, bias, residual = layer_norm_inputs(n, d)
    y, rows = ops.layer_norm_u8(x, weight, bias, 1e-5)
    assert_layer_norm_of(y, x, weight, bias)
    for got, expected in zip(rows, ops.quantize_rows_u8(y)):
        assert torch.equal(got, expected)
    # with a residual (bert.ResidualNorm's y + x): exactly the norm of the fp32 sum
    y_sum, rows_sum = ops.layer_norm_u8(x, weight, bias, 1e-5, residual=residual)
    y_of_sum, rows_of_sum = ops.layer_norm_u8(x + residual, weight, bias, 1e-5)
    assert torch.equal(y_sum, y_of_sum) and all(map(torch.equal, rows_sum, rows_of_sum))
    with pytest.raises(ValueError, match="residual must be x's shape"):
        ops.layer_norm_u8(x, weight, bias, 1e-5, residual=residual[:, :-1] if d > 1 else residual[:0])


@pytest.mark.parametrize("n,d", SHAPES)
def test_engine_layer_norm_bf16_matches_float64(n, d, engine_variant):
    """A bf16 pass's norm: LayerNorm to fp32 rounding, and that output rounded to bf16 exactly as torch
    rounds it; of a bf16 sublayer output with an fp32 residual, exactly the norm of their fp32 sum (bf16 +
    fp32 in torch), also with the residual a slice (a cross-encoder's last layer keeps its first token)."""
    x, weight, bias, residual = layer_norm_inputs(n, d)
    y, half = ops.layer_norm_bf16(x, weight, bias, 1e-5)
    assert_layer_norm_of(y, x, weight, bias)
    assert half.dtype == torch.bfloat16 and torch.equal(half.view(torch.int16), y.to(torch.bfloat16).view(torch.int16))
    sublayer = residual.to(torch.bfloat16)
    assert (sublayer + x).dtype == torch.float32
    y_of_sum, half_of_sum = ops.layer_norm_bf16(sublayer + x, weight, bias, 1e-5)
    for fp32 in (x, torch.cat([x, residual], 1)[:, :d]):  # x itself and a strided view of its values
        y_sum, half_sum = ops.layer_norm_bf16(sublayer, weight, bias, 1e-5, residual=fp32)
        assert torch.equal(y_sum, y_of_sum) and torch.equal(half_sum.view(torch.int16), half_of_sum.view(torch.int16))
    short = sublayer[:, :-1] if d > 1 else sublayer[:0]
    for rows, added in ((x.to(torch.bfloat16), None), (sublayer.float(), x), (sublayer, x.to(torch.bfloat16)), (short, x)):
        with pytest.raises(ValueError, match="layer_norm_bf16 takes x float32"):
            ops.layer_norm_bf16(rows, weight, bias, 1e-5, added)


def test_engine_bf16_rounding_is_torchs_to_the_bit(engine_variant):
    """With a zero weight a LayerNorm's output is its bias exactly, so its bf16 rows show the engine's
    rounding of chosen values (a row of 39: whole vectors and a tail): ties to even (1 + 2^-8 down to 1,
    1 + 3 * 2^-8 up), the largest floats up to infinity, subnormals kept (AVX512-BF16's own conversion
    would flush them), zero and infinities, each as torch's .to(torch.bfloat16) gives it; NaNs stay NaN (torch's
    bits for one differ between its scalar and vector conversions)."""
    values = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 3.4028235e38, -3.4028235e38, 1e-40, -1e-40, 2 ** -133,
              0.0, 2 ** -126, float("inf"), float("-inf"), float("nan"), -float("nan"), 1 + 2 ** -8 + 2 ** -20, 0.1]
    bias = torch.tensor(values * 2 + values[:7])
    _, half = ops.layer_norm_bf16(torch.randn(3, len(bias)), torch.zeros(len(bias)), bias, 1e-5)
    number = ~bias.isnan()
    want = bias.to(torch.bfloat16).view(torch.int16)[number]
    for row in half:
        assert torch.equal(row.view(torch.int16)[number], want) and row[~number].isnan().all()


@pytest.mark.parametrize("count", [1, 15, 16, 17, 4099])
def test_engine_bf16_gelu_is_the_fp32_gelu_of_its_inputs_rounded(count, engine_variant):
    """GELU on bf16 in place: exactly the engine's fp32 GELU (_C.gelu) of the widened values, rounded to bf16
    as torch rounds, so within 1.5e-7 |x| and one bf16 rounding of float64's. (Below x = -3.5, where GELU
    is under 1e-3 in size, 1.5e-7 |x| is a sizeable part of a bf16 step, and below about -4.1 more than
    one: there it may round a step or more away from F.gelu's.) NaN stays NaN."""
    g = torch.Generator().manual_seed(count)
    x = (torch.randn(count, generator=g) * torch.logspace(-3, 1.5, count)).to(torch.bfloat16)
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -3.7, 3.7, -9.0, -13.5, 50.0, float("nan"), 1e-40, -6.0])
    x[: min(count, len(special))] = special[:count].to(torch.bfloat16)
    widened = x.float()
    got = ops.gelu_bf16_(x)
    assert got is x and got.dtype == torch.bfloat16
    want = torch.from_numpy(_C.gelu(widened.numpy())).to(torch.bfloat16)
    kept = ~widened.isnan()
    assert torch.equal(got.view(torch.int16)[kept], want.view(torch.int16)[kept])
    exact = widened.double() * 0.5 * (1 + torch.erf(widened.double() / 2 ** 0.5))
    # and subnormal outputs may come out as 0 (both GELUs)
    bound = (1 + 2 ** -8) * 1.5e-7 * widened.double().abs() + 2 ** -8 * exact.abs() + 2 ** -126
    assert ((got.double() - exact).abs()[kept] <= bound[kept]).all()
    assert got[~kept].isnan().all()
    for bad in (widened, torch.zeros(4, 6, dtype=torch.bfloat16)[:, ::2]):
        with pytest.raises(ValueError, match="gelu_bf16_ needs a contiguous CPU bfloat16 tensor"):
            ops.gelu_bf16_(bad)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (15, 5, 17), (16, 384, 1536), (37, 383, 45), (257, 70, 3)])
def test_engine_int8_linear_gelu_u8_is_its_three_steps_exactly(m, k, n, engine_variant):
    """The fused step (blocks of 16 rows through a scratch block) gives, to the bit, what its three steps
    give one after the other: int8_linear, GELU, quantize_rows_u8."""
    g = torch.Generator().manual_seed(m + k + n)
    q = torch.randint(0, 256, (m, (k + 3) // 4 * 4), generator=g, dtype=torch.uint8)
    q[:, k:] = 0
    packed = ops.pack_int8_weights(pair_bounded_weights(g, n, k))
    epilogue = (torch.rand(m, generator=g) / 100, torch.randn(m, generator=g), torch.rand(n, generator=g) / 100,
                torch.randn(n, generator=g), torch.randn(n, generator=g))
    got = ops.int8_linear_gelu_u8(q, k, packed, n, *epilogue)
    steps = torch.from_numpy(_C.gelu(ops.int8_linear(q, k, packed, n, *epilogue).numpy()))
    want = ops.quantize_rows_u8(steps)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert got[0].shape == (m, (n + 3) // 4 * 4)
    assert m * n == 1 or got[0][:, :n].unique().numel() > 2  # not a constant nor only the two ends


@pytest.mark.parametrize("b,t,heads,dh,k", [(1, 1, 1, 1, 1), (3, 5, 2, 3, 7), (9, 13, 4, 8, 33), (2, 70, 3, 16, 48),
                                            (40, 7, 12, 32, 384)])
def test_engine_int8_self_attention_u8_is_its_three_steps_exactly(b, t, heads, dh, k, engine_variant):
    """The fused step (the projection 64 rows at a time, each batch row attending once its tokens are
    projected; batch rows longer than 64 tokens and groups that end mid-row included) gives, to the bit,
    what int8_linear, attention and quantize_rows_u8 give one after the other, padded keys included."""
    g = torch.Generator().manual_seed(b * t + heads * dh + k)
    n = 3 * heads * dh
    q = torch.randint(0, 256, (b * t, (k + 3) // 4 * 4), generator=g, dtype=torch.uint8)
    q[:, k:] = 0
    packed = ops.pack_int8_weights(pair_bounded_weights(g, n, k))
    epilogue = (torch.rand(b * t, generator=g) / 100, torch.randn(b * t, generator=g), torch.rand(n, generator=g) / 100,
                torch.randn(n, generator=g), torch.randn(n, generator=g))
    mask = torch.rand(b, t, generator=g) < 0.8
    mask[:, 0] = True
    attended, rows = ops.int8_self_attention_u8(q, k, packed, n, *epilogue, mask, heads)
    want = ops.attention(ops.int8_linear(q, k, packed, n, *epilogue).view(b, t, n), mask, heads)
    assert attended.shape == (b, t, heads * dh) and torch.equal(attended, want)
    for got, expected in zip(rows, ops.quantize_rows_u8(want.view(b * t, -1))):
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    for queries in sorted({1, (t + 1) // 2}):  # the first tokens alone: their rows of the whole, to the bit
        first, first_rows = ops.int8_self_attention_u8(q, k, packed, n, *epilogue, mask, heads, queries)
        assert first.shape == (b, queries, heads * dh) and torch.equal(first, want[:, :queries])
        for got, expected in zip(first_rows, ops.quantize_rows_u8(want[:, :queries].reshape(b * queries, -1))):
            assert torch.equal(got, expected)
    with pytest.raises(ValueError, match="key_mask must be"):
        ops.int8_self_attention_u8(q, k, packed, n, *epilogue, mask[:, :-1] if t > 1 else mask[:0], heads)
    for queries in (0, t + 1):
        with pytest.raises(ValueError, match="queries must be"):
            ops.int8_self_attention_u8(q, k, packed, n, *epilogue, mask, heads, queries)


def pair_bounded_weights(g: torch.Generator, n: int, k: int, bound: int = _C.INT8_PAIR_MAX) -> torch.Tensor:
    """Random int8 weights in [-127, 127] where each same-sign pair of inputs (2t, 2t + 1) adds up to at
    most `bound` in magnitude, as engine_weight_scale makes them; pairs at the bound included."""
    w = torch.randint(-127, 128, (n, k + k % 2), generator=g)
    first, second = w[:, 0::2], w[:, 1::2]
    room = bound - first.abs()
    too_big = (first * second > 0) & (first.abs() + second.abs() > bound)
    second[too_big] = second.sign()[too_big] * room[too_big]
    return w[:, :k].to(torch.int8).contiguous()


def test_engine_weights_that_could_saturate_are_refused():
    ok = torch.tensor([[64, 64, 127, -127], [-100, -28, 0, 127]], dtype=torch.int8)
    ops.pack_int8_weights(ok)
    for bad in ([[65, 64, 0, 0]], [[0, 0, -100, -29]]):
        with pytest.raises(ValueError, match="could saturate"):
            ops.pack_int8_weights(torch.tensor(bad, dtype=torch.int8))


def test_engine_weight_scales_keep_every_pair_within_the_bound():
    from transenc.quantize import engine_weight_scale

    g = torch.Generator().manual_seed(3)
    weight = torch.randn(64, 385, generator=g) * torch.logspace(-2, 1, 64)[:, None]
    weight[0, :2] = 5.0  # a same-sign pair that sets the row's scale
    scale = engine_weight_scale(weight)
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    ops.pack_int8_weights(q)  # refuses anything that could saturate
    np.testing.assert_allclose(scale[0], 10.0 / 127, rtol=1e-6)
    plain = weight.abs().amax(1) / 127
    assert (scale >= plain).all() and (scale <= 2 * plain).all()


def test_engine_int8_matmul_refuses_mismatched_arguments():
    w = torch.zeros(16, 8, dtype=torch.int8)
    packed, q = ops.pack_int8_weights(w), torch.zeros(3, 8, dtype=torch.uint8)
    ones3, ones16 = torch.ones(3), torch.ones(16)
    with pytest.raises(ValueError, match="q must be uint8"):
        ops.int8_linear(q, 12, packed, 16, ones3, ones3, ones16, ones16)
    with pytest.raises(ValueError, match="packed must be"):
        ops.int8_linear(q, 8, packed, 17, ones3, ones3, torch.ones(17), torch.ones(17))  # a panel short
    with pytest.raises(ValueError, match="row_scale and row_offset"):
        ops.int8_linear(q, 8, packed, 16, ones16, ones16, ones16, ones16)
    with pytest.raises(ValueError, match="int8 tensor"):
        ops.pack_int8_weights(w.float())
    with pytest.raises(ValueError, match="int8_linear_gelu_u8: packed must be"):
        ops.int8_linear_gelu_u8(q, 8, packed, 17, ones3, ones3, torch.ones(17), torch.ones(17))


# batch rows x tokens x heads x head width: single ones, around a tile of 8 queries and a block of 16
# keys, around the 32 value elements of a pass, MiniLM's (12 x 32) and mpnet's (12 x 64) heads
ATTENTIONS = [(1, 1, 1, 1), (3, 17, 2, 5), (2, 8, 3, 16), (2, 33, 1, 33), (4, 40, 12, 32), (1, 70, 2, 64),
              (2, 9, 1, 130), (5, 16, 4, 31)]


def attention_inputs(b: int, t: int, heads: int, dh: int) -> tuple[torch.Tensor, torch.Tensor]:
    """qkv float32 [b, t, 3 * heads * dh] and its key mask: keys masked anywhere, right padding, a row
    with one kept key and a row with none, and scores large enough that a softmax without its shift
    would overflow."""
    g = torch.Generator().manual_seed(b * 1000 + t * 10 + dh)
    qkv = torch.randn(b, t, 3 * heads * dh, generator=g) * torch.logspace(-1, 1.3, b)[:, None, None]
    mask = torch.rand(b, t, generator=g) > 0.3
    mask[:, 0] = True
    if b > 1:
        mask[1, max(1, t // 2):] = False  # right padding: those keys are skipped, those queries still answered
    if b > 2:
        mask[2] = False
        mask[2, t - 1] = True
    if b > 3:
        mask[3] = False
    return qkv, mask


@pytest.mark.parametrize("b,t,heads,dh", ATTENTIONS)
def test_engine_attention_matches_float64(b, t, heads, dh, engine_variant):
    """attention_inputs' rows; a row without a kept key gives zeros. The avx512_bf16 variant against the
    float64 attention of its bf16 inputs."""
    qkv, mask = attention_inputs(b, t, heads, dh)
    got = ops.attention(qkv, mask, heads)
    values = qkv[..., 2 * heads * dh:].double().abs().amax((1, 2))[:, None, None]  # each row's value scale
    if engine_variant == "avx512_bf16":
        # its products read queries, keys and values rounded to bf16 once (to nearest even, as torch
        # rounds), and weights rounded to bf16 (each within 2^-9 of itself, normalised again: the sum moves
        # by at most 2^-8 of the values' scale); its sums are fp32
        want = reference.attention_reference(qkv.to(torch.bfloat16).float(), mask, heads)
        bound = 2 ** -8 * values + 1e-5 * want.abs()
    else:
        want = reference.attention_reference(qkv, mask, heads)
        bound = 2e-6 * values + 1e-5 * want.abs()
    assert got.dtype == torch.float32 and got.shape == (b, t, heads * dh)
    assert ((got.double() - want).abs() <= bound).all()
    if b > 3:
        assert not got[3].any()
    for queries in sorted({1, t // 2 + 1, t}):  # the first tokens alone: their rows of the whole, to the bit
        assert torch.equal(ops.attention(qkv, mask, heads, queries), got[:, :queries])


@pytest.mark.parametrize("b,t,heads,dh", ATTENTIONS)
def test_engine_bf16_attention_is_the_fp32_attention_of_its_inputs_rounded(b, t, heads, dh, engine_variant):
    """bf16 in and out, as a bf16 pass gives and reads it: exactly the fp32 path's output for the widened
    inputs, rounded to bf16 as torch rounds, also for the first tokens alone; and so within one bf16
    rounding more than that path of the float64 attention."""
    qkv, mask = attention_inputs(b, t, heads, dh)
    half = qkv.to(torch.bfloat16)
    got = ops.attention(half, mask, heads)
    assert got.dtype == torch.bfloat16 and got.shape == (b, t, heads * dh)
    fp32 = ops.attention(half.float(), mask, heads)
    assert torch.equal(got.view(torch.int16), fp32.to(torch.bfloat16).view(torch.int16))
    for queries in sorted({1, t // 2 + 1, t}):
        assert torch.equal(ops.attention(half, mask, heads, queries).view(torch.int16), got[:, :queries].view(torch.int16))
    want = reference.attention_reference(half.float(), mask, heads)
    values = half[..., 2 * heads * dh:].double().abs().amax((1, 2))[:, None, None]
    assert ((got.double() - want).abs() <= 2 ** -8 * values + 2 ** -8 * want.abs()).all()
    if b > 3:
        assert not got[3].float().any()


def test_engine_bf16_attention_rounds_a_tie_to_even(engine_variant):
    """Two equal keys weigh their values 1/2 each, so the fp32 output is their mean exactly: 1 + 1.5 * 2^-7
    and -(1 + 2^-8), each halfway between two bf16 values, go to the even one (1 + 2^-6 and -1), where
    truncation would give 1 + 2^-7 and rounding half up -(1 + 2^-7)."""
    q, k = [0.5, 0.25], [1.0, -2.0]
    qkv = torch.tensor([[q + k + [1.0, -1.0], q + k + [1 + 3 * 2 ** -7, -(1 + 2 ** -7)]]], dtype=torch.bfloat16)
    got = ops.attention(qkv, torch.ones(1, 2, dtype=torch.bool), 1)
    assert got.float().tolist() == [[[1 + 2 ** -6, -1.0], [1 + 2 ** -6, -1.0]]]


def test_engine_attention_refuses_mismatched_arguments():
    qkv = torch.zeros(2, 5, 12)
    ops.attention(qkv, torch.ones(2, 5), 2)
    mask = np.ones((2, 5), np.uint8)
    for array, kind, what in [(qkv.numpy(), "f16", "kind must be"), (qkv.numpy(), "bf16", "does not match kind"),
                              (qkv.bfloat16().view(torch.int16).numpy(), "f32", "does not match kind"),
                              (qkv[0].numpy(), "f32", "must be 3-D")]:
        with pytest.raises(ValueError, match=what):  # the binding's own checks, behind ops.attention's
            _C.attention(array, kind, mask, 2, 5)
    with pytest.raises(ValueError, match="key_mask"):
        ops.attention(qkv, torch.ones(2, 4), 2)
    with pytest.raises(ValueError, match="3 \\* heads"):
        ops.attention(qkv, torch.ones(2, 5), 5)
    for queries in (0, 6):
        with pytest.raises(ValueError, match="queries must be"):
            ops.attention(qkv, torch.ones(2, 5), 2, queries)
    with pytest.raises(ValueError, match="key mask"):
        engine_attention(qkv, torch.ones(2, 1, 5, 5, dtype=torch.bool), 2)  # a full [B, 1, T, T] mask


def test_int8_models_attend_on_the_engine_where_it_is_fast_and_agree_with_sdpa(tiny_bert):
    """int8_model swaps each transenc.bert layer's attention for the engine's under an AVX-512 variant,
    keeps SDPA under the others, and leaves the fp32 model's alone; on a padded batch the engine's and
    SDPA agree on every kept token (to bf16's rounding under avx512_bf16)."""
    from transenc import bert
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")  # for transformers' tokenizer, which pads
    model = bert.load(Path(tiny_bert), False, torch.device("cpu"))
    try:
        for variant in _C.variants():
            _C.set_variant(variant)
            want = engine_attention if variant in ("avx512", "avx512_vnni", "avx512_bf16") else bert.sdpa_attention
            assert {layer.attention for layer in int8_model(model).layers} == {want}, variant
    finally:
        _C.set_variant("auto")
    assert {layer.attention for layer in model.layers} == {bert.sdpa_attention}
    batch = encoder.tokenizer(["a cat sleeps on the mat", "rain", "the stock market fell sharply today"],
                              padding=True, return_tensors="pt")
    mask, kept = batch["attention_mask"].bool()[:, None, None, :], batch["attention_mask"].bool()
    # the engine's attention as it is under each variant that uses it (its plain loops elsewhere)
    for variant in [v for v in _C.variants() if v.startswith("avx512")] or [_C.variant()]:
        _C.set_variant(variant)
        try:
            quantized = int8_model(model)
            with torch.inference_mode():
                for layer in quantized.layers:
                    layer.self_attention, layer.attention = bert.self_attention, engine_attention
                engine = quantized(batch["input_ids"], mask).last_hidden_state
                for layer in quantized.layers:
                    layer.attention = bert.sdpa_attention
                sdpa = quantized(batch["input_ids"], mask).last_hidden_state
        finally:
            _C.set_variant("auto")
        assert not torch.equal(engine, sdpa), variant  # the engine really ran
        # bf16 products move the attention output by ~2^-9 of itself, and so some roundings of the next
        # layers' int8 activations by a step
        tolerance = 2e-3 if variant == "avx512_bf16" else 1e-4
        torch.testing.assert_close(engine[kept], sdpa[kept], atol=tolerance, rtol=tolerance,
                                   msg=lambda message: f"{variant}: {message}")


def test_int8_models_fuse_attention_and_feed_forward_on_the_engine_under_vnni_and_agree_with_the_steps(
        tiny_bert, monkeypatch):
    """int8_model gives each transenc.bert layer engine_self_attention and engine_feed_forward on the
    engine kernel under the avx512_vnni variant and above only; the fp32 model keeps bert's. Forced on,
    the fused calls run (counted); the fused self-attention gives its steps' output bit for bit, the fused
    feed-forward agrees with its steps (GELU differs by 1.5e-7 |x| at most, which may move a rounding of
    the next quantization by one step)."""
    from transenc import bert
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")
    model = bert.load(Path(tiny_bert), False, torch.device("cpu"))
    hooks = lambda m: {(layer.self_attention, layer.feed_forward) for layer in m.layers}  # noqa: E731
    try:
        for variant in _C.variants():
            _C.set_variant(variant)
            for kernel in ("torch", "engine"):
                fused = kernel == "engine" and variant in ("avx512_vnni", "avx512_bf16")
                want = (engine_self_attention, engine_feed_forward) if fused else (bert.self_attention, bert.feed_forward)
                assert hooks(int8_model(model, kernel)) == {want}, (variant, kernel)
    finally:
        _C.set_variant("auto")
    assert hooks(model) == {(bert.self_attention, bert.feed_forward)}
    quantized = int8_model(model, "engine")
    batch = encoder.tokenizer(["a cat sleeps on the mat", "rain", "the stock market fell sharply today"],
                              padding=True, return_tensors="pt")
    calls = []
    for name in ("int8_self_attention_u8", "int8_linear_gelu_u8"):
        monkeypatch.setattr(ops, name, lambda *a, _f=getattr(ops, name), _n=name: calls.append(_n) or _f(*a))

    def run(self_attention, feed_forward):
        for layer in quantized.layers:
            layer.self_attention, layer.attention, layer.feed_forward = self_attention, engine_attention, feed_forward
        with torch.inference_mode():
            return quantized(batch["input_ids"], batch["attention_mask"]).last_hidden_state

    fused = run(engine_self_attention, engine_feed_forward)
    assert sorted(calls) == sorted(["int8_self_attention_u8", "int8_linear_gelu_u8"] * len(quantized.layers))
    assert torch.equal(fused, run(bert.self_attention, engine_feed_forward))
    torch.testing.assert_close(fused, run(bert.self_attention, bert.feed_forward), atol=2e-3, rtol=0)


def test_int8_engine_models_quantize_where_their_norms_are_read_by_int8_layers(tiny_bert, monkeypatch):
    """On the engine kernel, the embeddings' norm, every attention norm and every output norm but the last
    (read by pooling) become RowMakingLayerNorm, and the int8 layers after them take their rows instead
    of quantizing again (counted); the model agrees with plain norms. On torch's kernel none changes."""
    from transenc import bert
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")
    model = bert.load(Path(tiny_bert), False, torch.device("cpu"))
    norms = lambda m: [m.embeddings.LayerNorm] + [n for layer in m.layers for n in (layer.attention_norm, layer.output_norm)]  # noqa: E731
    quantized = int8_model(model, "engine")
    kinds = [type(n) for n in norms(quantized)]
    assert kinds == [RowMakingLayerNorm] * (len(kinds) - 1) + [bert.ResidualNorm]
    assert not any(isinstance(n, RowMakingLayerNorm) for n in norms(int8_model(model, "torch")))
    batch = encoder.tokenizer(["a cat sleeps on the mat", "rain", "the stock market fell sharply today"],
                              padding=True, return_tensors="pt")
    quantize_calls = []
    quantize = ops.quantize_rows_u8
    monkeypatch.setattr(ops, "quantize_rows_u8", lambda x: quantize_calls.append(1) or quantize(x))
    with torch.inference_mode():
        fused = quantized(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        fused_calls = len(quantize_calls)
        quantized.embeddings.LayerNorm = model.embeddings.LayerNorm
        for plain, layer in zip(model.layers, quantized.layers):
            layer.attention_norm, layer.output_norm = plain.attention_norm, plain.output_norm
        steps = quantized(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    layers = len(quantized.layers)
    # with plain norms: every layer's qkv and intermediate inputs, attention_out's and output's unless fused
    unfused_attention = sum(layer.self_attention is bert.self_attention for layer in quantized.layers)
    unfused_output = sum(layer.feed_forward is bert.feed_forward for layer in quantized.layers)
    assert len(quantize_calls) - fused_calls == 2 * layers + unfused_attention + unfused_output
    assert fused_calls == unfused_attention + unfused_output  # attention_out's input is not a norm's output
    torch.testing.assert_close(fused, steps, atol=2e-3, rtol=0)


@pytest.mark.parametrize("kernel", ["torch", "engine"])
def test_int8_linear_is_exact_on_int8_representable_inputs(kernel):
    """Rows of integers spanning exactly [-128, 127], weights of integers whose largest magnitude (and,
    for the engine, largest same-sign pair sum) is 127, quantize without loss: the int8 matmul must
    then give the float64 product to fp32 rounding."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (37, 70), generator=g).float()
    x[:, 0], x[:, 1] = -128, 127
    linear = torch.nn.Linear(70, 45)
    with torch.no_grad():
        # the engine's scales also bound same-sign pairs: 127 steps for the largest pair sum, here 127 + 0
        linear.weight.copy_(pair_bounded_weights(g, 45, 70, bound=127).float() if kernel == "engine" else
                            torch.randint(-127, 128, (45, 70), generator=g).float())
        linear.weight[:, :2] = torch.tensor([127.0, 0.0])
    with torch.inference_mode():
        got = Int8Linear(linear, kernel=kernel)(x.reshape(37, 1, 70)).reshape(37, 45)
    want = (x.double() @ linear.weight.double().T + linear.bias.double()).detach()
    np.testing.assert_allclose(got.double(), want, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["torch", "engine"])
@pytest.mark.parametrize("shape", [(1, 8), (5, 3, 8), (2, 7, 9, 8)])
def test_int8_linear_is_close_on_random_inputs(shape, kernel):
    g = torch.Generator().manual_seed(len(shape))
    x = torch.randn(*shape, generator=g).double()
    linear = torch.nn.Linear(8, 13).double()
    from transenc.quantize import engine_weight_scale

    with torch.inference_mode():
        got = Int8Linear(linear, kernel=kernel)(x.float()).double()
        w = linear.weight
        want = x @ w.T + linear.bias
        # each product is off by at most half an activation step times |w| plus half a weight step times |x|
        half_x = (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) / 255 / 2
        half_w = (w.abs().amax(1) / 127 if kernel == "torch" else engine_weight_scale(w.float()).double()) / 2
        bound = half_x * (w.abs() + half_w[:, None]).sum(1) + x.abs() @ half_w.expand(8, 13)
    assert got.shape == (*shape[:-1], 13)
    assert ((got - want).abs() <= bound * 1.001 + 1e-5).all()


def test_int8_runs_torch_int_mm_on_amx_or_avx_vnni_alone_else_the_engine(tiny_bert):
    from transenc.models import BiEncoder

    assert int8_kernel(frozenset({"avx512_vnni", "amx_int8"})) == int8_kernel(frozenset({"avx2", "avx_vnni"})) == "torch"
    assert int8_kernel(frozenset({"avx2", "avx512_vnni"})) == int8_kernel(frozenset({"avx_vnni", "avx512_vnni"})) == "engine"
    assert int8_kernel(frozenset({"avx2", "fma"})) == int8_kernel(frozenset()) == "engine"
    with pytest.raises(ValueError, match="int8 kernel must be one of"):
        Int8Linear(torch.nn.Linear(4, 4), kernel="onnx")
    model = BiEncoder.load(tiny_bert, "cpu").model
    for kernel in ("torch", "engine"):
        layers = [m for m in int8_model(model, kernel).modules() if isinstance(m, Int8Linear)]
        assert layers and {m.kernel for m in layers} == {kernel}
        assert len({id(m.last_input) for m in layers}) == 1  # one shared quantization per input


def test_the_two_int8_kernels_agree_on_a_model(tiny_bert):
    """Same model, same rows: the kernels differ only in the engine's weight scales (pair-bounded)."""
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")
    batch = encoder.tokenizer(["a cat sleeps on the mat", "rain falls", "the stock market fell sharply today"],
                              padding=True, return_tensors="pt")
    with torch.inference_mode():
        fp32 = encoder.model(**batch).last_hidden_state
        out = {k: int8_model(encoder.model, k)(**batch).last_hidden_state for k in ("torch", "engine")}
    assert not torch.equal(out["torch"], out["engine"])
    for got in out.values():
        assert torch.nn.functional.cosine_similarity(got.flatten(1), fp32.flatten(1)).min() > 0.99


def test_int8_model_shares_the_rest_and_leaves_the_model_alone(tiny_bert):
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    quantized = int8_model(encoder.model)
    linears = [m for m in quantized.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears and any(isinstance(m, Int8Linear) for m in quantized.modules())
    assert quantized.embeddings.word_embeddings.weight is encoder.model.embeddings.word_embeddings.weight
    assert all(isinstance(m, Int8Linear) is False for m in encoder.model.modules())
    assert all(torch.equal(v, before[k]) for k, v in encoder.model.state_dict().items())


def test_a_half_copy_casts_the_linear_layers_once_shares_the_rest_and_leaves_the_model_alone(tiny_bert):
    from transenc.models import BiEncoder
    from transenc.precision import half_linear_copy

    encoder = BiEncoder.load(tiny_bert, "cpu")
    encoder.model.train()
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    half = half_linear_copy(encoder.model, "bf16")
    linears = [m for m in half.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == m.bias.dtype == torch.bfloat16 for m in linears)
    assert half.embeddings.word_embeddings.weight is encoder.model.embeddings.word_embeddings.weight
    assert not half.training and encoder.model.training
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in encoder.model.state_dict().items())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_half_precision_scores_are_autocasts_bit_for_bit(tiny_bert, kind, precision, monkeypatch):
    """Cast once before the pass (half_linear_copy) or by autocast on every batch: the same rounding of
    the same weights, so the same scores exactly."""
    from transenc import models
    from transenc.labeling import load_scorer, score
    from transenc.pairset import PairSetBuilder
    from transenc.precision import half_linear_copy

    from transenc.bundled import DEMO_PAIRS

    builder = PairSetBuilder()
    for line in DEMO_PAIRS.read_text().splitlines()[:40]:
        builder.add(*line.split("\t")[:2])
    pairs = builder.build()
    encoder = load_scorer(str(tiny_bert), kind, "cpu", precision)  # once: a cross-encoder of it gets a random head
    copies = []
    monkeypatch.setattr(models, "half_linear_copy", lambda model, p: copies.append(p) or half_linear_copy(model, p))
    once = score(encoder, pairs, precision=precision, show_progress=False)
    assert copies == [precision]  # the copy ran
    # on scores with room to differ: the random cross head's all sit within ~1e-5 of 0.5, which bf16 and fp16
    # may round together, so the bi-encoder's carry that (both kinds share the copy's code path)
    assert kind == "cross" or len(np.unique(once)) > 3
    # autocast casts each batch (a copy all the same: a bf16 pass may swap the copy's attention)
    monkeypatch.setattr(models, "half_linear_copy", lambda model, p: module_copy(model).eval())
    assert np.array_equal(once, score(encoder, pairs, precision=precision, show_progress=False))


@pytest.mark.skipif("avx512_bf16" not in _C.variants(), reason="bf16 passes pack their weights under the engine's "
                    "avx512_bf16 variant, which does not run here")
@pytest.mark.parametrize("n,k,m", [(1, 8, 3), (37, 384, 1152), (301, 33, 17), (129, 1536, 384)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_packed_bf16_linear_is_f_linear_on_bf16_bit_for_bit(n, k, m, bias):
    """oneDNN's packing (PackedBf16Linear) moves the weight, not the sums: on one thread, as each of a CPU
    pass's streams runs, F.linear's bf16 output exactly (on two, either may split a sum its own way: 1 in
    ~50,000 outputs a step apart), for any row count (the weight is packed for 2,048), an input 3-d,
    strided and fp32 (cast as autocast casts) or bf16 rows from a _LastInput, and within bf16's rounding
    of the float64 product."""
    from torch.nn import functional as F
    from transenc.quantize import _LastInput

    g = torch.Generator().manual_seed(n * 7 + k * 3 + m)
    linear = torch.nn.Linear(k, m, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(m, k, generator=g) / k ** 0.5)
        if bias:
            linear.bias.copy_(torch.randn(m, generator=g))
    x = torch.randn(2, n, 2 * k, generator=g)[..., ::2]
    weight, b = linear.weight.bfloat16(), linear.bias.bfloat16() if bias else None
    last_input, threads = _LastInput("bf16"), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            want = F.linear(x.bfloat16(), weight, b)
            got = PackedBf16Linear(linear)(x)
            from_rows = PackedBf16Linear(linear, last_input)(x)
    finally:
        torch.set_num_threads(threads)
    assert got.dtype == torch.bfloat16 and got.shape == (2, n, m)
    assert torch.equal(got, want) and torch.equal(from_rows, want) and last_input.x is x
    exact = x.bfloat16().double() @ weight.double().T + (b.double() if bias else 0)
    magnitude = x.bfloat16().double().abs() @ weight.double().abs().T
    assert ((got.double() - exact).abs() <= 2 ** -8 * exact.abs() + 1e-6 * magnitude + 1e-30).all()
    with pytest.raises(ValueError, match="bf16 rows"):
        PackedBf16Linear(linear, _LastInput("engine"))


@pytest.mark.parametrize("kind", ["bi", "cross"])
@pytest.mark.parametrize("variant", ["avx512_bf16", "avx512"])
def test_bf16_passes_run_on_the_engine_where_its_products_are_bf16(tiny_bert, variant, kind, monkeypatch, tmp_path):
    """Under the avx512_bf16 variant a bf16 pass's attention runs on the engine, bf16 in and out, a
    cross-encoder's last layer for its first token alone; the LayerNorms that a Linear reads hand it their
    output's bf16 rows, which it takes as they are, and GELU runs on the engine; and the bi-encoder scores as
    with transformers' way (SDPA, torch's norms and GELU under autocast) to within bf16's rounding (the
    tiny cross-encoder's random head scores every pair within ~1e-5 of 0.5: no spread to compare). Under a
    narrower variant, where the engine's products would be fp32, all stays torch's."""
    from transenc import bert, quantize
    from transenc.api import read_pairs
    from transenc.labeling import load_scorer, score

    if variant not in _C.variants():
        pytest.skip(f"this CPU does not run the engine's {variant} variant")
    texts = [f"sentence {i} about {w}" for i, w in enumerate("cats dogs rain the sea a long road home".split())]
    pairs = read_pairs([(a, b) for a in texts for b in texts[:3]])
    model = tiny_bert
    if kind == "cross":  # with a pair head, which transenc.bert loads (a fresh head is left to transformers)
        import shutil
        import transformers

        model = shutil.copytree(tiny_bert, tmp_path / "cross")
        transformers.BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=1).save_pretrained(model)
    encoder = load_scorer(str(model), kind, "cpu", "bf16")
    assert isinstance(encoder.model, bert.Bert)
    calls, norms, gelus, reads = [], [], [], []
    real, real_norm, real_gelu, real_rows_of = ops.attention, ops.layer_norm_bf16, ops.gelu_bf16_, quantize._LastInput.rows_of
    monkeypatch.setattr(ops, "attention", lambda qkv, mask, heads, queries=None: calls.append((qkv.dtype, queries))
                        or real(qkv, mask, heads, queries))
    monkeypatch.setattr(ops, "layer_norm_bf16", lambda x, weight, bias, eps, residual=None:
                        norms.append(residual is not None) or real_norm(x, weight, bias, eps, residual))
    monkeypatch.setattr(ops, "gelu_bf16_", lambda x: gelus.append(x.shape) or real_gelu(x))
    monkeypatch.setattr(quantize._LastInput, "rows_of", lambda self, x: reads.append(x is self.x) or real_rows_of(self, x))
    packed, real_packed = [], quantize.packed_bf16_linear
    monkeypatch.setattr(quantize, "packed_bf16_linear", lambda rows, weight, bias: packed.append(rows.shape)
                        or real_packed(rows, weight, bias))
    _C.set_variant(variant)
    try:
        got = score(encoder, pairs, precision="bf16", show_progress=False)
        engine_calls = len(calls)
        monkeypatch.setattr(quantize, "use_engine_in_bf16", lambda model: model)
        sdpa = score(encoder, pairs, precision="bf16", show_progress=False)
    finally:
        _C.set_variant("auto")
    assert len(calls) == engine_calls  # the second pass ran SDPA
    # the copy's, not the model's
    assert not encoder.model.last_layer_first_token
    assert {layer.attention for layer in encoder.model.layers} == {bert.sdpa_attention}
    if variant != "avx512_bf16":
        assert calls == norms == gelus == reads == packed == []
        return
    assert calls and {dtype for dtype, _ in calls} == {torch.bfloat16}
    # a batch: the embeddings' norm (nothing to add), each layer's attention norm and all output norms but
    # the last (read by pooling), each adding its sublayer's output; a GELU a layer; every Linear that
    # reads a norm (query/key/value, intermediate) takes the rows that norm made
    layers = len(encoder.model.layers)
    batches = len(calls) // layers
    assert norms.count(False) == batches and norms.count(True) == batches * (2 * layers - 1)
    assert len(gelus) == batches * layers and reads == [True] * (2 * layers * batches)
    # and all four Linear layers of each layer run on oneDNN's packed weights
    assert len(packed) == 4 * layers * batches
    # each layer once a batch (streams may interleave them): the last one answers the first token alone in
    # a cross-encoder, every token in a bi-encoder
    queries = [q for _, q in calls]
    assert queries.count(1) == (len(queries) // layers if kind == "cross" else 0) and set(queries) <= {1, None}
    if kind == "bi":
        assert np.abs(got - sdpa).max() < 0.05 * got.std() and spearmanr(got, sdpa).statistic > 0.99
    # the packing changes no sum: on one thread, as each of a CPU pass's streams runs, the same pass on
    # F.linear, its weights unpacked, scores the same (on two, either may split a sum its own way)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _C.set_variant(variant)
    try:
        on_packed = score(encoder, pairs, precision="bf16", show_progress=False)
        monkeypatch.setattr(quantize, "packed_bf16_linear", lambda rows, weight, bias:
                            torch.nn.functional.linear(rows, weight.to_dense(), bias))
        assert np.array_equal(on_packed, score(encoder, pairs, precision="bf16", show_progress=False))
    finally:
        _C.set_variant("auto")
        torch.set_num_threads(threads)


@pytest.mark.skipif("avx512_bf16" not in _C.variants(), reason="the engine's avx512_bf16 variant does not run here")
def test_a_bf16_cross_encoders_first_token_on_the_engine_is_torchs_to_bf16_rounding(tiny_bert, tmp_path):
    """What a cross-encoder's pair head reads, its last layer's first token: on the engine (attention, the
    norms' bf16 rows and GELU, the last layer past attention for that token alone, its residual a strided
    slice) as close to fp32's as torch's bf16 pass under autocast (within twice its distance), and not the
    same numbers. (The tiny model's random head scores every pair alike: the hidden state has the spread.)"""
    import shutil
    import transformers
    from transformers import AutoTokenizer
    from transenc import bert, quantize
    from transenc.precision import half_linear_copy

    path = shutil.copytree(tiny_bert, tmp_path / "cross")
    transformers.BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=1).save_pretrained(path)
    model = bert.load(path, cross=True, device=torch.device("cpu"))
    texts = ["a cat sat on the mat", "dogs bark", "rain again today in the hills", "the sea"]
    batch = AutoTokenizer.from_pretrained(str(path))(texts, texts[::-1], padding=True, return_tensors="pt")
    first_tokens = []
    for precision in ("engine", "bf16", "fp32"):
        copy = half_linear_copy(model, "bf16") if precision != "fp32" else module_copy(model)
        if precision == "engine":
            quantize.use_engine_in_bf16(copy)
        copy.pooler = copy.classifier = torch.nn.Identity()  # the head reads tanh(first token)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "fp32"):
            first_tokens.append(copy(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits.float())
    got, torchs, fp32 = first_tokens
    assert got.shape == (len(texts), model.config.hidden_size) and fp32.std() > 0.1
    assert (got - fp32).abs().max() <= 2 * (torchs - fp32).abs().max() and not torch.equal(got, torchs)


def test_int8_encode_keeps_the_model_fp32_and_its_train_mode(tiny_bert):
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(tiny_bert, "cpu")
    encoder.model.train()
    fp32 = encoder.encode(["a cat", "a dog sleeps", "rain"], precision="fp32", show_progress=False)
    int8 = encoder.encode(["a cat", "a dog sleeps", "rain"], precision="int8", show_progress=False)
    assert encoder.model.training and not any(isinstance(m, Int8Linear) for m in encoder.model.modules())
    assert not torch.equal(fp32, int8)  # int8 really ran
    assert torch.nn.functional.cosine_similarity(fp32, int8).min() > 0.99


def test_auto_precision_by_cpu_flags():
    assert cpu_auto_precision(frozenset({"avx2", "amx_bf16", "avx512_vnni"})) == "bf16"
    assert cpu_auto_precision(frozenset({"avx512f", "avx512_bf16"})) == "bf16"
    assert cpu_auto_precision(frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})) == "int8"  # AMD EPYC: int8 faster
    assert cpu_auto_precision(frozenset({"avx512f", "avx512_vnni"})) == "int8"
    assert cpu_auto_precision(frozenset({"avx2", "avx_vnni"})) == "int8"
    assert cpu_auto_precision(frozenset({"avx2", "fma"})) == "int8"  # the engine's int8 matmul
    assert cpu_auto_precision(frozenset({"sse4_2"})) == "fp32"
    cpu = torch.device("cpu")
    assert inference_precision(cpu, "auto") == cpu_auto_precision()
    assert inference_precision(cpu, "fp32") == "fp32" and inference_precision(cpu, "int8") == "int8"
    assert training_precision(cpu, "auto") == cpu_training_precision() and training_precision(cpu, "int8") == "fp32"
    assert training_precision(cpu, "bf16") == "bf16" and training_precision(cpu, "fp32") == "fp32"


def test_training_auto_is_bf16_where_the_cpu_has_bf16_arithmetic():
    assert cpu_training_precision(frozenset({"avx2", "amx_bf16", "avx512_vnni"})) == "bf16"
    assert cpu_training_precision(frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})) == "bf16"  # AMD EPYC
    assert cpu_training_precision(frozenset({"avx512f", "avx512_vnni"})) == "fp32"  # VNNI is int8 only
    assert cpu_training_precision(frozenset({"avx2", "fma"})) == "fp32"


def test_a_precision_without_a_fast_path_on_this_cpu_is_named_once(monkeypatch, capsys):
    """Asked for by name on a CPU that lacks its arithmetic (bf16 without AVX512-BF16 or AMX ran 7x
    slower than fp32 on an AVX2-only AMD EPYC), a precision still runs, with one warning per process;
    auto, fp32 and a CPU that has the arithmetic get none."""
    from transenc import precision

    avx2_only, pre_avx2, cpu = frozenset({"avx2", "fma"}), frozenset({"sse4_2"}), torch.device("cpu")
    assert precision.slow_on_this_cpu("int8", pre_avx2) == "this CPU has no int8 dot products (VNNI or AMX) or AVX2"
    assert precision.slow_on_this_cpu("int8", avx2_only) is None  # the engine's int8 matmul
    assert precision.slow_on_this_cpu("bf16", avx2_only).endswith("(AVX512-BF16 or AMX)")
    assert precision.slow_on_this_cpu("int8", frozenset({"avx2", "avx_vnni"})) is None
    assert precision.slow_on_this_cpu("bf16", frozenset({"avx512_bf16"})) is None
    assert precision.slow_on_this_cpu("fp32", avx2_only) is None
    monkeypatch.setattr(precision, "cpu_flags", lambda: pre_avx2)
    monkeypatch.setattr(precision, "_warned", set())
    assert inference_precision(cpu, "auto") == "fp32" and inference_precision(cpu, "fp32") == "fp32"
    assert capsys.readouterr().err == ""
    for _ in range(3):
        assert inference_precision(cpu, "int8") == "int8"
    assert training_precision(cpu, "int8") == "fp32"  # int8 trains in fp32: nothing slow to say
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "no int8 dot products" in err and "auto runs fp32" in err
    assert training_precision(cpu, "bf16") == "bf16"
    assert "no bf16 arithmetic" in capsys.readouterr().err
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_vnni", "avx512_bf16"}))
    monkeypatch.setattr(precision, "_warned", set())
    assert inference_precision(cpu, "int8") == "int8" and training_precision(cpu, "bf16") == "bf16"
    assert capsys.readouterr().err == ""


def test_int8_is_refused_off_the_cpu_before_any_work():
    with pytest.raises(TransencError, match="int8 runs on the CPU only"):
        check_precision("int8", "cuda:0")
    check_precision("int8", "cpu")
    check_precision("int8", "auto")  # the CLI's default device: checked once resolved


def test_label_says_which_precision_ran(tiny_bert, tmp_path, capsys):
    from transenc.cli import main

    (tmp_path / "p.tsv").write_text("a cat sleeps\ta kitten naps\nrain falls\tthe sun shines\n")
    assert main(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", str(tiny_bert), "--precision", "int8",
                 "--out", str(tmp_path / "o.tsv")]) == 0
    assert "(bi-encoder, int8 on cpu)" in capsys.readouterr().err
    assert len((tmp_path / "o.tsv").read_text().splitlines()) == 2


# The bounds auto's choice rests on (measured on STS-B in bench/results/precision-*.md).
AGREEMENT = 0.999
STSB_TOLERANCE = 0.3


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_real_minilm_agrees_with_fp32(sts, precision):
    """The bi-encoder (a trained cross-encoder's agreement is measured in bench/: none ships here)."""
    from transenc.metrics import score100
    from transenc.labeling import bi_scores
    from transenc.models import BiEncoder
    from transenc.readers import read_pairs

    test, _ = read_pairs(sts / "sts-test.csv")
    bi = BiEncoder.load(None, "cpu")
    fp32, fast = (bi_scores(bi, test, precision=p) for p in ("fp32", precision))
    assert spearmanr(fp32, fast).statistic >= AGREEMENT
    assert abs(score100("spearman", fast, test.labels) - score100("spearman", fp32, test.labels)) <= STSB_TOLERANCE


@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16"])
def test_cpu_streams_give_one_stream_s_rows_in_order(tiny_bert, precision):
    """On a CPU, batches run as one stream per torch thread (each single-threaded): the rows come back
    in request order, equal to one stream's, and torch's thread count is restored."""
    from transenc.models import BiEncoder, CrossEncoder

    sentences = [("word " * (i % 7 + 1)) + f"number {i}" for i in range(40)]
    pairs = np.array([[i, (i * 7 + 3) % 40] for i in range(40)])
    bi, cross = BiEncoder.load(tiny_bert, "cpu"), CrossEncoder.load(tiny_bert, "cpu")
    seen = set()

    def recording(module, args, kwargs):
        seen.add(threading.current_thread().name)
        time.sleep(0.01)  # a tiny model's batch ends before the next is handed out: one thread would take all

    # a hook, which int8's copy of the model keeps: a replaced forward would run the fp32 model's
    bi.model.register_forward_pre_hook(recording, with_kwargs=True)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # one stream
        one = (bi.encode(sentences, batch_size=4, precision=precision, show_progress=False),
               cross.predict(sentences, pairs, batch_size=4, precision=precision, show_progress=False))
        assert len(seen) == 1
        torch.set_num_threads(3)  # three streams, whatever the cores
        three = (bi.encode(sentences, batch_size=4, precision=precision, show_progress=False),
                 cross.predict(sentences, pairs, batch_size=4, precision=precision, show_progress=False))
        assert torch.get_num_threads() == 3
        assert len({name for name in seen if name.startswith("transenc-stream")}) > 1
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(np.asarray(one[0]), np.asarray(three[0])) and np.array_equal(one[1], three[1])
    if precision != "fp32":  # the streams ran that precision's model, not the fp32 one
        assert not np.array_equal(np.asarray(one[0]), np.asarray(bi.encode(sentences, 4, "fp32", show_progress=False)))
