"""int8 inference on the CPU, made at load time from the fp32 weights (saved models stay fp32).

Every nn.Linear becomes an Int8Linear: weights int8 per output channel (symmetric), activations
int8 per row (per token, asymmetric: each row's [min, max]) at run time, one int8 matmul, then a
one-pass epilogue back to fp32. The matmul is one of two kernels (int8_kernel):
- "torch", where the CPU has AMX-INT8 or AVX-VNNI without AVX-512: torch._int_mm (oneDNN), s8 x s8
  with weights in [-127, 127] and activations in [-128, 127], then the engine's epilogue
  (ops.dequantize_rows_);
- "engine", elsewhere: the engine's u8 x s8 matmul (csrc/int8_gemm.h), epilogue fused, with
  AVX512-VNNI's dot products where the CPU has them (~410-450 G ops/s on a Zen 4 core) and AVX2's
  16-bit pair sums where it has not (~190 G ops/s on a Zen 3 core, where _int_mm has no fast
  kernel: 2.9 G ops/s against fp32's 89). Its activations take the same 256 steps (unsigned); its
  weights' scales also keep each same-sign pair of inputs (2t, 2t + 1) within 128 steps, so that AVX2's
  16-bit pair sums cannot saturate (engine_weight_scale). Measured on STS-B test with fake
  quantization, that costs almost nothing: Spearman against fp32 0.99976 / 0.99961 / 0.99954 (MiniLM
  bi, MiniLM cross, all-mpnet-base-v2) where plain 8-bit weights give 0.99976 / 0.99965 / 0.99958;
  narrowing the ranges instead (weights +-96, activations 0-170) gave 0.99953 / 0.99929 / 0.99905.
A scale per token matters: one per batch, as torch's dynamic quantization
has, lets a single outlier token flatten every other row (Spearman 0.983 against fp32 on a trained
MiniLM cross-encoder, measured when this was chosen; per token: 0.9997, bench/results/precision-*.md).
A row's own range matters too: symmetric per-token int8 cost STS-B test 0.31, asymmetric 0.15.
Attention, LayerNorm, embeddings and GELU stay fp32. In a transenc.bert model the engine also takes
them over where that measured faster: attention (ops.attention, engine_attention) under an AVX-512
variant, where SDPA spent most of its time around the work on scoring's short rows (its products in
bf16 under avx512_bf16); under avx512_vnni and above, GELU inside the intermediate layer's matmul
(engine_feed_forward) and attention beside the query/key/value matmul (engine_self_attention); and
the LayerNorms that an int8 layer reads, which quantize their output as they make it
(RowMakingLayerNorm). An int8 cross-encoder's last layer answers attention, and runs past it, for
its first token alone (bert.Bert.last_layer_first_token), the one its pair head reads.
bf16 passes (precision.half_linear_copy) attend on the engine too, bf16 in and out, where its
products are bf16, and cut a cross-encoder's last layer as int8 copies do; there their norms hand
the next Linear its bf16 rows as int8's hand it int8 rows, GELU runs on the engine, and the Linear
layers run on weights that oneDNN packed once (use_engine_in_bf16).
"""
from __future__ import annotations

import threading

import torch

from transenc import _C, bert, ops
from transenc.precision import cpu_flags, module_copy

KERNELS = ("torch", "engine")


def int8_kernel(flags: frozenset[str] | None = None) -> str:
    """The int8 matmul for this CPU. The engine's, with its epilogue fused: on AVX512-VNNI (its
    avx512_vnni variant: on a Zen 4 core its GEMMs ran 1.04-1.19x _int_mm and the separate epilogue
    on MiniLM's shapes, while whole forwards stayed within noise of _int_mm's, median 1.009 cross /
    1.000 bi over 8 alternating rounds; kept as the one kernel that later fusions can extend), on
    AVX2 (~190 G ops/s on a Zen 3 core, where _int_mm without VNNI runs 2.9) and in its baseline
    variant (a plain loop at ~10 G ops/s still beats 2.9). torch._int_mm (oneDNN) where the CPU has
    AMX-INT8, or AVX-VNNI without AVX-512 (no engine variant for it)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags or ("avx_vnni" in flags and "avx512_vnni" not in flags):
        return "torch"
    return "engine"


def engine_weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per output row of `weight` [n, k], the scale of the engine's int8 weights: 127 steps for the
    largest |w|, and for the largest |w_2t| + |w_2t+1| of a pair sharing a sign. Rounding adds at most
    one step to such a pair: 128 = _C.INT8_PAIR_MAX, and 255 * 128 fits an int16."""
    n, k = weight.shape
    pairs = torch.nn.functional.pad(weight, (0, k % 2)).view(n, -1, 2)
    same_sign = pairs[..., 0] * pairs[..., 1] > 0
    pair_sum = torch.where(same_sign, pairs.abs().sum(-1), torch.zeros_like(pairs[..., 0])).amax(1)
    return torch.maximum(weight.abs().amax(1), pair_sum).clamp_min(1e-12) / 127


class _LastInput(threading.local):
    """The last input that a model's Linear layers read, and the rows they take of it, per thread (the
    CPU runs one stream of batches per core through the same model): int8 rows for an int8 kernel (kind
    one of KERNELS: its quantized rows), bf16 for a bf16 pass (kind "bf16"). Attention's query, key and
    value layers read the same tensor object: they make its rows once; a LayerNorm that makes them as it
    makes its output leaves them here (RowMakingLayerNorm). (Held here, the tensor
    cannot be freed and its memory reused by another; inference tensors have no version counter, so an
    in-place change between two calls would go unseen: no encoder layer makes one.)"""

    def __init__(self, kind: str = "torch"):
        self.kind, self.x, self.rows = kind, None, None

    def remember(self, x: torch.Tensor, rows) -> None:
        """x's rows, made for this kind by whoever made x (RowMakingLayerNorm)."""
        self.x, self.rows = x, rows

    def rows_of(self, x: torch.Tensor):
        """x's rows [N, d]: bf16, or for an int8 kind (q, scale, offset)."""
        if x is not self.x:
            self.x, rows = x, x.reshape(-1, x.shape[-1])
            if self.kind == "bf16":
                self.rows = rows.to(torch.bfloat16)
            else:
                self.rows = (ops.quantize_rows if self.kind == "torch" else ops.quantize_rows_u8)(rows)
        return self.rows


class Int8Linear(torch.nn.Module):
    """A Linear's inference with int8 weights (a scale per output channel) and int8 inputs (a scale and an
    offset per row), on one of KERNELS (int8_kernel: this CPU's fast one). Layers that read the same
    input share a _LastInput made for the same kernel."""

    def __init__(self, linear: torch.nn.Linear, last_input: _LastInput | None = None, kernel: str | None = None):
        super().__init__()
        self.kernel = kernel or int8_kernel()
        if self.kernel not in KERNELS:
            raise ValueError(f"int8 kernel must be one of {KERNELS}, got {self.kernel!r}")
        self.last_input = last_input or _LastInput(self.kernel)
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp_min(1e-12) / 127 if self.kernel == "torch" else engine_weight_scale(weight)
        q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        if self.kernel == "torch":
            # [in, out] as a transposed view of the contiguous [out, in] rows: _int_mm's fast layout.
            self.register_buffer("weight_t", q.t(), persistent=False)
        else:
            self.register_buffer("packed", ops.pack_int8_weights(q), persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        # what each row's offset multiplies: the dequantized weights' sum over inputs
        self.register_buffer("col_sum", q.sum(1, dtype=torch.int32).float() * scale, persistent=False)
        self.bias = None if linear.bias is None else linear.bias.detach().float()
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_rows(self.last_input.rows_of(x)).view(*x.shape[:-1], self.out_features)

    def from_rows(self, rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """float32[N, out_features] from the quantized input rows (q, scale, offset) of this kernel."""
        q, row_scale, row_offset = rows
        if self.kernel == "torch":
            return ops.dequantize_rows_(torch._int_mm(q, self.weight_t), row_scale, row_offset, self.scale,
                                        self.col_sum, self.bias)
        return ops.int8_linear(q, self.in_features, self.packed, self.out_features, row_scale, row_offset,
                               self.scale, self.col_sum, self.bias)


def engine_attention(qkv: torch.Tensor, mask: torch.Tensor, heads: int, queries: int | None = None) -> torch.Tensor:
    """bert.Layer's attention on the engine (ops.attention): `mask` is the [B, 1, 1, T] key mask that
    bert.Bert passes to SDPA. On one Zen 4 core, 32 rows of 12 heads of 32: 2.2-2.6x SDPA's speed at
    28 tokens, 1.7x at 56; the whole int8 forward of STS-B's pairs (bench/results/roofline-*.md): its
    attention time 2.7-3.0 s against SDPA's 4.8 s (cross), 2.2-2.4 s against 6.4 s (bi)."""
    return ops.attention(qkv, _key_mask(mask, *qkv.shape[:2], "engine_attention"), heads, queries)


def _key_mask(mask: torch.Tensor, b: int, t: int, who: str) -> torch.Tensor:
    """The [B, T] key mask of the [B, 1, 1, T] one that bert.Bert passes to SDPA."""
    if tuple(mask.shape) != (b, 1, 1, t):
        raise ValueError(f"{who} takes a key mask [B, 1, 1, T] = {(b, 1, 1, t)}, got {tuple(mask.shape)}")
    return mask.reshape(b, t)


class RowMakingLayerNorm(torch.nn.Module):
    """A LayerNorm whose output a Linear layer reads next, made into that layer's rows in the same pass of
    the engine: quantized for the engine kernel's int8 layers (ops.layer_norm_u8), rounded to bf16 for a bf16
    pass's (ops.layer_norm_bf16, its fp32 output kept as the next residual, as under autocast). The rows
    wait in the shared _LastInput, where the next layer finds them instead of reading its input once more.
    In place of a bert.ResidualNorm it adds the sublayer's input in that pass too."""

    OPS = {"engine": "layer_norm_u8", "bf16": "layer_norm_bf16"}  # by the rows' kind (looked up when called)

    def __init__(self, norm: torch.nn.LayerNorm, last_input: _LastInput):
        super().__init__()
        if last_input.kind not in self.OPS or len(norm.normalized_shape) != 1:
            raise ValueError("RowMakingLayerNorm hands rows to the engine kernel's int8 layers or a bf16 pass's, "
                             "over one dimension")
        self.weight, self.bias, self.eps, self.last_input = norm.weight, norm.bias, norm.eps, last_input

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """LayerNorm(x), or LayerNorm(x + residual) (in place of a bert.ResidualNorm), the add in the same pass."""
        d = x.shape[-1]
        make = getattr(ops, self.OPS[self.last_input.kind])
        y, rows = make(x.reshape(-1, d), self.weight, self.bias, self.eps,
                       None if residual is None else residual.reshape(-1, d))
        y = y.view(x.shape)
        self.last_input.remember(y, rows)
        return y


# oneDNN packs a weight for a number of rows; batches of 37 to 3,001 rows ran as fast on weights packed
# for 2,048 as on weights packed for their own count (one core of the AMX Xeon)
PACKED_FOR_ROWS = 2048


def pack_bf16_weight(weight: torch.Tensor) -> torch.Tensor:
    """A Linear's weight [out, in] as bf16 in oneDNN's blocked layout, for packed_bf16_linear."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(torch.bfloat16).contiguous(), PACKED_FOR_ROWS)


def packed_bf16_linear(rows: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows [N, k] (bf16) times a weight that oneDNN packed (PackedBf16Linear), plus bias: the inner product
    that F.linear runs on bf16 tensors, less its reorder of the weight on every call. On one thread, as
    each of a CPU pass's streams runs, bit for bit F.linear's; on several, either may split a sum its
    own way (1 in ~50,000 outputs a bf16 step apart, a batch scored alone)."""
    return torch.ops.mkldnn._linear_pointwise(rows, packed, bias, "none", [], "")


class PackedBf16Linear(torch.nn.Module):
    """A bf16 pass's Linear on a CPU, its weight reordered once into oneDNN's blocked layout, where F.linear
    reorders it on every call (packed_bf16_linear): on one core of the AMX Xeon, MiniLM's four Linear
    shapes at 2,048 rows ran 1.14-1.33x as fast, and whole passes 1.07-1.08x (use_engine_in_bf16). Given
    `last_input`, it reads its input's bf16 rows there (those a RowMakingLayerNorm made, or its input
    cast once for all its readers); without, it casts its input as autocast would (engine attention's
    output and GELU's are bf16 already)."""

    def __init__(self, linear: torch.nn.Linear, last_input: _LastInput | None = None):
        super().__init__()
        if last_input is not None and last_input.kind != "bf16":
            raise ValueError("PackedBf16Linear reads bf16 rows")
        self.packed = pack_bf16_weight(linear.weight)
        self.bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.out_features, self.last_input = linear.out_features, last_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last_input is not None:
            rows = self.last_input.rows_of(x)
        else:
            rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        return packed_bf16_linear(rows, self.packed, self.bias).view(*x.shape[:-1], self.out_features)


def engine_feed_forward_bf16(layer: bert.Layer, x: torch.Tensor) -> torch.Tensor:
    """bert.feed_forward of a bf16 pass with GELU on the engine, in place on the intermediate layer's bf16
    output (ops.gelu_bf16_)."""
    return layer.output(ops.gelu_bf16_(layer.intermediate(x)))


def engine_self_attention(layer: bert.Layer, x: torch.Tensor, mask: torch.Tensor, queries: int | None = None
                          ) -> torch.Tensor:
    """bert.Layer's query/key/value Linear, attention and the quantization of its output in one call of
    the engine (ops.int8_self_attention_u8): attention reads the projection from L2 as it is made and
    the quantized rows wait for the attention output Linear in the shared _LastInput. `mask` is the
    [B, 1, 1, T] key mask that bert.Bert passes to SDPA."""
    qkv = layer.qkv
    q, scale, offset = qkv.last_input.rows_of(x)
    attended, rows = ops.int8_self_attention_u8(q, qkv.in_features, qkv.packed, qkv.out_features, scale, offset,
                                                qkv.scale, qkv.col_sum, qkv.bias,
                                                _key_mask(mask, *x.shape[:2], "engine_self_attention"), layer.heads,
                                                queries)
    qkv.last_input.remember(attended, rows)
    return attended


def engine_feed_forward(layer: bert.Layer, x: torch.Tensor) -> torch.Tensor:
    """bert.Layer's intermediate Linear, GELU and output Linear on the engine's int8 kernel, GELU and the
    output layer's quantization inside the intermediate layer's matmul (ops.int8_linear_gelu_u8): its
    fp32 [tokens, 1,536] is never written out, nor read twice more. With RowMakingLayerNorm, on one Zen 4
    core over 3,000 STS-B pairs, the whole int8 forward ran 1.07x (cross) and 1.19x (bi) as fast as
    with F.gelu, torch's LayerNorm and separate quantizations (medians of 4 alternating rounds)."""
    inner, outer = layer.intermediate, layer.output
    q, scale, offset = inner.last_input.rows_of(x)
    rows = ops.int8_linear_gelu_u8(q, inner.in_features, inner.packed, inner.out_features, scale, offset,
                                   inner.scale, inner.col_sum, inner.bias)
    return outer.from_rows(rows).view(*x.shape[:-1], outer.out_features)


def _variant_from(narrowest: str) -> bool:
    """Whether the engine's variant in use is `narrowest` or a wider one (_C.VARIANTS: narrowest first)."""
    return _C.VARIANTS.index(_C.variant()) >= _C.VARIANTS.index(narrowest)


def engine_fuses_layers(kernel: str) -> bool:
    """Whether int8 copies on `kernel` run engine_self_attention and engine_feed_forward: on the engine's
    kernel under its avx512_vnni variant (and avx512_bf16, the same matmul; both attend on the engine),
    whose matmul writes 8 rows whole at a time, so that their blocks of 16 and 64 rows cost it nothing.
    The other variants' matmuls pass each weight panel over ~170 rows at a time, and in blocks of 16 the
    baseline variant ran about 1.2x slower (forced on a Zen 4 core, timed beside a training run: a
    direction, not a figure)."""
    return kernel == "engine" and _variant_from("avx512_vnni")


def engine_attends() -> bool:
    """Whether int8 copies attend on the engine: where it runs an AVX-512 variant, whose products are
    written by hand (in bf16 under avx512_bf16). Its plain loops (the avx2 and baseline variants) ran at
    half SDPA's speed (both variants forced on a Zen 4 core: 5.2 ms against 2.6 at 32 rows of 28
    tokens), so there SDPA stays."""
    return _variant_from("avx512")


def norms_make_rows(model: bert.Bert, last_input: _LastInput) -> None:
    """The LayerNorms of `model` whose output a Linear layer reads next become RowMakingLayerNorms that
    leave its rows in `last_input`: the embeddings', each layer's attention norm (read by its intermediate
    layer) and each output norm but the last (read by the next layer's query/key/value layer). The last
    one's output goes to pooling or one pooled row."""
    inner = [(model.embeddings, "LayerNorm")] + [(layer, "attention_norm") for layer in model.layers]
    for owner, name in inner + [(layer, "output_norm") for layer in model.layers[:-1]]:
        setattr(owner, name, RowMakingLayerNorm(getattr(owner, name), last_input))


def use_engine_in_bf16(model: torch.nn.Module) -> torch.nn.Module:
    """Where the engine's attention products are bf16 (its avx512_bf16 variant), a bf16 copy's
    (precision.half_linear_copy) transenc.bert layers run there as an int8 copy's do:
    - attention on the engine, bf16 in and out (engine_attention), a cross-encoder's last layer for its
      first token alone;
    - the LayerNorms that a Linear reads add the residual, normalise and make that Linear's bf16 rows in
      one pass (RowMakingLayerNorm), where autocast would add, normalise and cast in three;
    - GELU on the engine, in place (engine_feed_forward_bf16);
    - the Linear layers on weights oneDNN packed once (PackedBf16Linear), bit for bit F.linear's.
    On a 2-core Xeon with AMX, each measured A/B on STS-B's 8,567 pairs: attention 1.15x (cross) /
    1.19x (bi) and the cut 1.07x more (cross); norms and GELU 1.09x / 1.18x; packing 1.08x / 1.07x;
    Spearman against fp32 0.99998 / 1.00000 throughout (docs/precision.md gives every figure)."""
    if _variant_from("avx512_bf16"):
        last_input = _LastInput("bf16")
        if isinstance(model, bert.Bert):
            model.last_layer_first_token = True
            norms_make_rows(model, last_input)
        for module in list(model.modules()):
            if isinstance(module, bert.Layer):
                module.attention = engine_attention
                module.feed_forward = engine_feed_forward_bf16
                module.qkv = PackedBf16Linear(module.qkv, last_input)
                module.intermediate = PackedBf16Linear(module.intermediate, last_input)
                module.attention_out = PackedBf16Linear(module.attention_out)
                module.output = PackedBf16Linear(module.output)
    return model


def int8_model(model: torch.nn.Module, kernel: str | None = None) -> torch.nn.Module:
    """An inference copy of `model` whose Linear layers are Int8Linear on `kernel` (default: this CPU's,
    int8_kernel) and whose transenc.bert layers attend (engine_attends), and run their self-attention and
    feed-forward as fused calls (engine_fuses_layers), on the engine where that is faster; on the engine kernel the LayerNorms that
    int8 layers read quantize their output as they make it (RowMakingLayerNorm).
    Every other parameter and buffer is shared with `model`, not copied, so the copy costs only the int8
    weights."""
    kernel = kernel or int8_kernel()
    quantized = module_copy(model)
    last_input = _LastInput(kernel)
    if isinstance(quantized, bert.Bert):
        quantized.last_layer_first_token = True  # every int8 kernel here treats each row on its own
    if isinstance(quantized, bert.Bert) and kernel == "engine":
        norms_make_rows(quantized, last_input)
    for module in list(quantized.modules()):
        if isinstance(module, bert.Layer):
            if engine_attends():
                module.attention = engine_attention
            if engine_fuses_layers(kernel):
                module.self_attention, module.feed_forward = engine_self_attention, engine_feed_forward
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, Int8Linear(child, last_input, kernel))
    return quantized.eval()
