"""The single door to the scoring engine.

Each op picks the Triton kernel (transenc.kernels) for CUDA tensors and the C++ engine
(transenc._C) for CPU tensors. The plain-torch float64 references the tests check them against
are in transenc.reference.
"""
from __future__ import annotations

import numpy as np
import torch

from transenc import _C  # no fallback: without the compiled engine, importing ops fails

# CPU tensors of these dtypes reach the engine as they are; anything else is cast to fp32.
_KINDS = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def _engine_rows(x: torch.Tensor, dtype: torch.dtype | None = None) -> tuple[np.ndarray, str]:
    """A zero-copy numpy view of a contiguous CPU float tensor and its kind for `_C`.

    numpy has no bfloat16, so bf16 travels as its int16 bit pattern. Only dtypes the engine
    does not read (fp64, integers) or non-contiguous tensors are copied.
    """
    x = x.detach()
    dtype = dtype or x.dtype
    if dtype not in _KINDS:
        dtype = torch.float32
    x = x.to(dtype).contiguous()
    if dtype == torch.bfloat16:
        return x.view(torch.int16).numpy(), "bf16"
    return x.numpy(), _KINDS[dtype]


def _common_dtype(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    # fp16 with bf16 promotes to fp32; one engine dtype per call keeps the kernels simple.
    return torch.promote_types(a.dtype, b.dtype)


def pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a[i], b[i]) as float32[N]; a zero row gives 0."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"pair_cosine needs two [N, d] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.is_cuda:
        from transenc.kernels import pair_cosine as kernel

        return kernel.pair_cosine(a, b)
    dtype = _common_dtype(a, b)
    x, kind = _engine_rows(a, dtype)
    y, _ = _engine_rows(b, dtype)
    return torch.from_numpy(_C.pair_cosine(x, y, kind))


def pair_cosine_indexed(table: torch.Tensor, idx: torch.Tensor | np.ndarray) -> torch.Tensor:
    """cos(table[idx[i, 0]], table[idx[i, 1]]) as float32[N], the gather fused into the pass."""
    idx = torch.as_tensor(idx)
    if table.dim() != 2 or idx.dim() != 2 or idx.shape[1] != 2:
        raise ValueError("pair_cosine_indexed needs table [R, d] and idx [N, 2]")
    # Checked before the int32 cast, which would wrap large int64 indices silently.
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= table.shape[0]):
        raise ValueError(f"pair_cosine_indexed: index out of range for a table of {table.shape[0]} rows")
    if table.is_cuda:
        from transenc.kernels import pair_cosine as kernel

        return kernel.pair_cosine_indexed(table, idx.to(table.device, torch.int32))
    rows, kind = _engine_rows(table)
    ids = idx.to("cpu", torch.int32).contiguous().numpy()
    return torch.from_numpy(_C.pair_cosine_indexed(rows, kind, ids))


def cosine_topk(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, exclude_self: bool = False, first_query_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact cosine top-k: (scores float32[Q, k], ids int64[Q, k]).

    Rows are normalised (a zero row scores 0); each row is sorted by score descending, ties
    by lower id; k beyond the corpus pads with -inf / -1. exclude_self is for mining, where the
    queries are corpus rows first_query_id, first_query_id + 1, ...: each query's own row is left
    out. The Q x C score matrix is never materialised beyond one tile.
    """
    if queries.dim() != 2 or corpus.dim() != 2 or queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"cosine_topk needs queries [Q, d] and corpus [C, d], got {tuple(queries.shape)} and {tuple(corpus.shape)}")
    if int(k) != k or k < 0:
        raise ValueError(f"cosine_topk: k must be a non-negative integer, got {k!r}")
    if int(first_query_id) != first_query_id or first_query_id < 0:
        raise ValueError(f"cosine_topk: first_query_id must be a non-negative integer, got {first_query_id!r}")
    if first_query_id and not exclude_self:
        raise ValueError("cosine_topk: first_query_id only applies with exclude_self")
    if queries.is_cuda:
        from transenc.kernels import cosine_topk as kernel

        return kernel.cosine_topk(queries, corpus, int(k), exclude_self, int(first_query_id))
    q, q_kind = _engine_rows(queries)
    c, c_kind = _engine_rows(corpus)
    scores, ids = _C.cosine_topk(q, q_kind, c, c_kind, int(k), bool(exclude_self), int(first_query_id))
    return torch.from_numpy(scores), torch.from_numpy(ids)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric per-row int8: (q int8[N, d], scale float32[N], offset float32[N]) with
    x ~ q * scale[:, None] + offset[:, None], q in [-128, 127] spanning each row's [min, max],
    rounded half to even. CPU only (the int8 inference path)."""
    return _quantized(_C.quantize_rows, "quantize_rows", x)


def quantize_rows_u8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """quantize_rows' steps unsigned, for the engine's own int8 matmul: (q uint8[N, d rounded up to 4],
    scale, offset) with x ~ q[:, :d] * scale[:, None] + offset[:, None], q in [0, 255] spanning each
    row's [min, max] (the columns past d are 0). CPU only."""
    return _quantized(_C.quantize_rows_u8, "quantize_rows_u8", x)


def _quantized(quantize, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if x.dim() != 2 or x.is_cuda:
        raise ValueError(f"{name} needs a CPU tensor [N, d], got {tuple(x.shape)} on {x.device}")
    return tuple(torch.from_numpy(a) for a in quantize(x.detach().to(torch.float32).contiguous().numpy()))


def pack_int8_weights(w: torch.Tensor) -> torch.Tensor:
    """int8 weights [n, k] (one row per output) packed for int8_linear. ValueError where two inputs (2t,
    2t + 1) of a row have weights of one sign adding up to more than _C.INT8_PAIR_MAX (AVX2's 16-bit
    pair sums could saturate; quantize.engine_weight_scale keeps them within)."""
    if w.dtype != torch.int8 or w.dim() != 2 or w.is_cuda:
        raise ValueError("pack_int8_weights needs a CPU int8 tensor [n, k]")
    return torch.from_numpy(_C.pack_int8_weights(w.contiguous().numpy()))


def _int8_matmul_arguments(q, k, packed, n, row_scale, row_offset, col_scale, col_sum, bias) -> tuple:
    """The engine's int8 matmul arguments as _C takes them: numpy views and ints."""
    return (q.numpy(), int(k), packed.numpy(), int(n), row_scale.numpy(), row_offset.numpy(), col_scale.numpy(),
            col_sum.numpy(), None if bias is None else bias.numpy())


def int8_linear(q: torch.Tensor, k: int, packed: torch.Tensor, n: int, row_scale: torch.Tensor,
                row_offset: torch.Tensor, col_scale: torch.Tensor, col_sum: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """The engine's int8 matmul (csrc/int8_gemm.h) of quantize_rows_u8 rows and packed weights with
    dequantize_rows_'s epilogue: float32[N, n]."""
    return torch.from_numpy(_C.int8_linear(*_int8_matmul_arguments(q, k, packed, n, row_scale, row_offset, col_scale,
                                                                   col_sum, bias)))


def int8_linear_gelu_u8(q: torch.Tensor, k: int, packed: torch.Tensor, n: int, row_scale: torch.Tensor,
                        row_offset: torch.Tensor, col_scale: torch.Tensor, col_sum: torch.Tensor,
                        bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """quantize_rows_u8(gelu(int8_linear(...))) in one pass of the engine (csrc/int8_gemm.h), exactly,
    without writing int8_linear's float32[N, n]: (q, scale, offset) for the next int8 layer. GELU is
    erf's (as F.gelu's) to within 1.5e-7 |x|."""
    return tuple(torch.from_numpy(a) for a in _C.int8_linear_gelu_u8(
        *_int8_matmul_arguments(q, k, packed, n, row_scale, row_offset, col_scale, col_sum, bias)))


def int8_self_attention_u8(q: torch.Tensor, k: int, packed: torch.Tensor, n: int, row_scale: torch.Tensor,
                           row_offset: torch.Tensor, col_scale: torch.Tensor, col_sum: torch.Tensor,
                           bias: torch.Tensor | None, key_mask: torch.Tensor, heads: int, queries: int | None = None
                           ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """attention(int8_linear(...) viewed as [B, T, n], key_mask, heads, queries) and its output quantized
    by quantize_rows_u8, in one call of the engine (csrc/int8_gemm.h), exactly, without writing the
    float32 projection out: (float32[B, queries, n / 3], (q, scale, offset)). key_mask [B, T] (nonzero
    or True: a token to attend to) with B * T the rows of q; queries: see attention."""
    out, *rows = _C.int8_self_attention_u8(
        *_int8_matmul_arguments(q, k, packed, n, row_scale, row_offset, col_scale, col_sum, bias),
        _mask_bytes(key_mask), int(heads), int(key_mask.shape[-1] if queries is None else queries))
    return torch.from_numpy(out), tuple(torch.from_numpy(a) for a in rows)


def layer_norm_u8(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                  residual: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """F.layer_norm of the rows [N, d] of x + residual (None: x alone; the sum rounded to fp32 as torch's
    is) to fp32 rounding, and its output quantized exactly as quantize_rows_u8 makes it, in one pass of
    the engine (csrc/quantize.h): (y, (q, scale, offset)). CPU only."""
    for t in (x, residual):
        if t is not None and (t.dim() != 2 or t.is_cuda or t.dtype != torch.float32):
            raise ValueError(f"layer_norm_u8 needs CPU float32 tensors [N, d], got {tuple(t.shape)} {t.dtype} on {t.device}")
    y, *rows = _C.layer_norm_u8(x.contiguous().numpy(), None if residual is None else residual.contiguous().numpy(),
                                weight.detach().numpy(), bias.detach().numpy(), float(eps))
    return torch.from_numpy(y), tuple(torch.from_numpy(a) for a in rows)


def layer_norm_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                    residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A bf16 pass's LayerNorm in one pass of the engine (csrc/quantize.h): F.layer_norm of the rows [N, d] of
    x + residual (x fp32 alone, or x bf16, a sublayer's output, with its fp32 input as the residual; the sum
    rounded to fp32 as torch's is) to fp32 rounding, and that output rounded to bf16 as .to(torch.bfloat16)
    rounds it: (fp32 [N, d], bf16 [N, d]). CPU only."""
    fp32, sublayer = (x, None) if residual is None else (residual, x)
    for t, dtype in ((fp32, torch.float32), (sublayer, torch.bfloat16)):
        if t is not None and (t.dim() != 2 or t.is_cuda or t.dtype != dtype or t.shape != fp32.shape):
            raise ValueError("layer_norm_bf16 takes x float32 [N, d] alone, or x bfloat16 [N, d] with a float32 "
                             f"residual of its shape, got {tuple(t.shape)} {t.dtype} on {t.device}")
    y, half = _C.layer_norm_bf16(None if sublayer is None else sublayer.contiguous().view(torch.int16).numpy(),
                                 fp32.contiguous().numpy(), weight.detach().numpy(), bias.detach().numpy(), float(eps))
    return torch.from_numpy(y), torch.from_numpy(half).view(torch.bfloat16)


def gelu_bf16_(x: torch.Tensor) -> torch.Tensor:
    """GELU (erf's, as F.gelu's) of a contiguous CPU bf16 tensor in place, each value widened, its GELU to
    within 1.5e-7 |x| (csrc/quantize.h), rounded back to nearest even; returns x."""
    if x.dtype != torch.bfloat16 or x.is_cuda or not x.is_contiguous():
        raise ValueError(f"gelu_bf16_ needs a contiguous CPU bfloat16 tensor, got {x.dtype} on {x.device}")
    _C.gelu_bf16_(x.view(torch.int16).numpy())
    return x


def dropout_mask(seed: int, count: int, p: float) -> torch.Tensor:
    """uint8[count]: 1 to keep an element, 0 (with probability p, to 1/65,536) to drop it, element i's draw a
    hash of (seed, i) alone (csrc/dropout.h)."""
    threshold = round(p * 65536)
    if not 0 <= threshold < 65536:
        raise ValueError(f"dropout_mask: p must be in [0, 1) and round below 1 in steps of 1/65,536, got {p}")
    return torch.from_numpy(_C.dropout_mask(seed % 2 ** 64, count, threshold))


def masked_scale_takes(x: torch.Tensor) -> bool:
    """Whether masked_scale takes x: a CPU float32 or bfloat16 tensor."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)


def masked_scale(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """x * (keep ? scale : 0) of a CPU fp32 or bf16 tensor, keep uint8 of as many elements (dropout_mask):
    a new tensor of x's shape, bf16 multiplied in fp32 and rounded to nearest even."""
    if not masked_scale_takes(x):
        raise ValueError(f"masked_scale needs a CPU float32 or bfloat16 tensor, got {x.dtype} on {x.device}")
    rows, kind = _engine_rows(x)
    out = torch.empty(x.shape, dtype=x.dtype)
    target = out.view(torch.int16).numpy() if kind == "bf16" else out.numpy()
    _C.masked_scale(rows.reshape(-1), kind, keep.contiguous().numpy(), scale, target.reshape(-1))  # views
    return out


def dequantize_rows_(acc: torch.Tensor, row_scale: torch.Tensor, row_offset: torch.Tensor, col_scale: torch.Tensor,
                     col_sum: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The int8 matmul's epilogue in one pass, in place: int32 acc[i, j] (sum_k q[i, k] wq[k, j]) ->
    acc * row_scale[i] * col_scale[j] + row_offset[i] * col_sum[j] + bias[j], returned as a float32
    view of the same memory. col_sum[j] = col_scale[j] * sum_k wq[k, j] carries the rows' offsets."""
    if acc.dtype != torch.int32 or acc.dim() != 2 or not acc.is_contiguous() or acc.is_cuda:
        raise ValueError("dequantize_rows_ needs a contiguous CPU int32 [N, d] tensor")
    _C.dequantize_rows(acc.numpy(), row_scale.numpy(), row_offset.numpy(), col_scale.numpy(), col_sum.numpy(),
                       None if bias is None else bias.numpy())
    return acc.view(torch.float32)


def attention(qkv: torch.Tensor, key_mask: torch.Tensor, heads: int, queries: int | None = None) -> torch.Tensor:
    """Multi-head softmax attention of a BERT layer from its fused query/key/value projection
    (csrc/attention.h): qkv [B, T, 3 * heads * dh], key_mask [B, T] (nonzero or True: a token to attend
    to) -> [B, queries, heads * dh], the heads side by side as the next Linear reads them: the first
    `queries` tokens' (None: all T), each what it is when all are answered.
    F.scaled_dot_product_attention's result to fp32 rounding (reference.attention_reference), except
    that a row without a kept key gives zeros, not NaN. bf16 qkv gives bf16, exactly the fp32 result of
    its widened values rounded to bf16 (a bf16 pass's); any other dtype is read as fp32 and gives fp32.
    CPU only (the int8 path and bf16 passes)."""
    if qkv.dim() != 3 or qkv.is_cuda or tuple(key_mask.shape) != tuple(qkv.shape[:2]):
        raise ValueError(f"attention needs CPU qkv [B, T, 3 * width] and key_mask [B, T], got {tuple(qkv.shape)} "
                         f"and {tuple(key_mask.shape)}")
    rows, kind = _engine_rows(qkv, torch.bfloat16 if qkv.dtype == torch.bfloat16 else torch.float32)
    out = torch.from_numpy(_C.attention(rows, kind, _mask_bytes(key_mask), int(heads),
                                        int(qkv.shape[1] if queries is None else queries)))
    return out.view(torch.bfloat16) if kind == "bf16" else out


def _mask_bytes(key_mask: torch.Tensor) -> np.ndarray:
    """uint8 [B, T] of a key mask: a bool mask (what bert passes, every layer) read as its bytes, others
    made 0/1 first."""
    mask = key_mask.detach().contiguous()
    return (mask.view(torch.uint8) if mask.dtype == torch.bool else (mask != 0).to(torch.uint8)).numpy()
