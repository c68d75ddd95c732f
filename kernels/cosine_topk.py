"""Exact cosine top-k: for each query, the k corpus rows of highest cosine.

cosine_topk(queries [Q, d], corpus [C, d], k) -> (scores float32[Q, k], ids int64[Q, k]),
sorted by score descending, ties broken by the lower corpus id, padded with -inf / -1 when
k > C, and with `exclude_self` each query's own corpus row left out (query i is corpus row
`first_query_id` + i).

Design.

1. Norms first (`_inv_norm_kernel`): one cheap pass over each input writes 1 / ||row|| in fp32
   (0 for a zero row). Rather than writing normalised copies of the inputs (a second corpus in
   memory, and a rounding of every element to fp16/bf16), the top-k kernel multiplies the raw
   tile product by these two scale vectors: the scores are the cosines of the inputs as given,
   with only fp32 accumulation error, and a zero row scores 0, never NaN.

2. The main kernel (`_topk_kernel`) is a grid of (query blocks, corpus splits). A program owns
   BLOCK_Q queries and one contiguous split of the corpus, which it walks in BLOCK_C-wide tiles:
     - tile product S = Q_blk · C_tileᵀ through `tl.dot`, looping d in BLOCK_K chunks with fp32
       accumulation (tensor cores for fp16/bf16). fp32 inputs use input_precision="ieee" by
       default: exact fp32 on the CUDA cores, no tf32 rounding, about 15x slower than bf16 on
       an H200. `fp32_precision="tf32x3"` (near-fp32 accuracy on the tensor cores) or "tf32"
       can be asked for explicitly.
     - S is scaled by the two inverse-norm vectors; columns past C (and, with exclude_self,
       the query's own id) become -inf.
     - running top-k: each query keeps K_PAD = next_pow2(k) (score, id) slots in registers
       (slots beyond k hold +inf so they are never evicted), and `thresh` = its k-th best.
       A tile is merged only while some query has an element above its threshold: each step
       takes, per query, the tile's maximum (the lowest column among equal maxima), and if it
       beats the threshold it replaces the worst slot (lowest score; among equal lowest
       scores, the highest id), then removes it from the tile. The number of steps per tile is
       the largest number of insertions any query in the block makes there: about k on a
       split's first tiles, ~1 or 0 later, since a query's threshold rises quickly. The
       merge is exact for every k; its cost grows with k, so speed is tuned for k <= 16.
     - Insertion needs a strictly greater score. Within a program the tiles are visited in
       increasing id order and within a tile equal maxima leave lowest column first, so an
       equal score always arrives with a higher id than what it ties with: "strictly greater"
       is exactly the tie rule "lower id wins".
   The Q x C score matrix exists only as one [BLOCK_Q, BLOCK_C] tile in registers per program.
   Two loop shapes, the same arithmetic (config `loop`): "tiles" (the default) nests the d loop
   in the tile loop, so its load pipeline drains before each merge and refills after it; "flat"
   walks (tile, d-chunk) as one loop and merges when a tile's last chunk is in, so the next
   tile's loads are in flight during the merge (seen in an sm_90a compile, no GPU). Which is
   faster is for a GPU to say: bench/test_bench_gpu_kernels.py sweeps both.

3. Each program writes its K_PAD candidates to a [splits, Q, K_PAD] buffer; a small final merge
   in torch over the splits * K_PAD candidates of each query (a sort by id, then a stable sort
   by score descending) gives the sorted top-k with the tie rule, then pads to k.

Memory: inputs (Q + C)·d, plus (Q + C) fp32 inverse norms, plus splits·Q·K_PAD·(4 + 4) bytes of
candidates and the Q·k outputs. splits is chosen so that the grid has ~4 programs per SM (it is
at most ceil(4·SMs / query blocks) and at most C / (16·BLOCK_C)), so Q·splits <= Q + 4·SMs·BLOCK_Q
and, with K_PAD < 2k, the candidate buffer is O((Q + SMs·BLOCK_Q)·k): for 20k queries, k = 10 on an
H200, 4 splits x 16 slots, 10 MB (the merge's torch temporaries are a few times that).

Tile sizes (defaults, reasoned; bench/test_bench_gpu_kernels.py sweeps a few. Measured on an H200 since,
bench/results/gpu-check-nvidia-h200.md: at d = 384 the launch table's fp16/bf16 entry, 64 x 256
tiles (MEASURED below), ran 20k queries x 1M, k = 10 in 54.1 ms, 284 TFLOP/s; 64 x 64 at 4 warps
took 70.9 ms):
BLOCK_Q = BLOCK_C = 128, BLOCK_K = 64, 8 warps, 3 stages for fp16/bf16: the usual Hopper
matmul tile, a 128 x 128 fp32 accumulator is 64 registers a thread at 8 warps, leaving room for
the running top-k (2 x 16 slots x 128 queries = 16 registers a thread at k <= 16). For large
K_PAD (> 32), BLOCK_Q drops to 64 to keep the running slots in registers. For fp32 "ieee" the
dot runs on the CUDA cores: 64 x 64 tiles, BLOCK_K = 32; fp32 on the tensor cores (tf32,
tf32x3) takes BLOCK_K = 32 so that three stages of 4-byte tiles fit in shared memory.
Compiled ahead of time for sm_90a (Triton 3.6 and 3.9, no GPU): the fp16/bf16 kernel uses wgmma
with cp.async pipelining, 233-242 registers a thread and no spills, so one 8-warp program per SM;
the flat loop 241-255 registers, no spills.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from transenc.kernels import capability, measured

_FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _inv_norm_kernel(x_ptr, out_ptr, n, d, stride, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    ss = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for d0 in range(0, d, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        x = tl.load(x_ptr + rows[:, None] * stride + cols[None, :],
                    mask=row_ok[:, None] & (cols < d)[None, :], other=0.0).to(tl.float32)
        ss += x * x
    norm = tl.sqrt(tl.sum(ss, axis=1))
    inv = tl.where(norm > 0.0, 1.0 / tl.where(norm > 0.0, norm, 1.0), 0.0)
    tl.store(out_ptr + rows, inv, mask=row_ok)


@triton.jit
def _tile_scores(acc, inv_q, q_rows, cols, inv_c_ptr, n_c, first_query_id, EXCLUDE_SELF: tl.constexpr):
    """The tile's cosines from its raw products; -inf past the corpus end (and for the query's own id)."""
    c_ok = cols < n_c
    inv_c = tl.load(inv_c_ptr + cols, mask=c_ok, other=0.0)
    s = acc * inv_q[:, None] * inv_c[None, :]
    drop = ~c_ok[None, :]
    if EXCLUDE_SELF:
        drop = drop | (cols[None, :] == (first_query_id + q_rows)[:, None])
    return tl.where(drop, float("-inf"), s)


@triton.jit
def _merge_tile(s, cols, top_s, top_i, thresh, slots, n_c, K_PAD: tl.constexpr):
    """Merge a tile's scores into the running top-k, one insertion per query per step."""
    best = tl.max(s, axis=1)
    while tl.max((best > thresh).to(tl.int32), axis=0) > 0:
        take = best > thresh
        col = tl.min(tl.where(s == best[:, None], cols[None, :], n_c), axis=1)
        col = tl.where(take, col, -1)
        # Evict the worst slot: lowest score, and among equal lowest scores the highest id.
        is_min = top_s == thresh[:, None]
        worst_id = tl.max(tl.where(is_min, top_i, -2), axis=1)
        slot = tl.min(tl.where(is_min & (top_i == worst_id[:, None]), slots[None, :], K_PAD), axis=1)
        put = take[:, None] & (slots[None, :] == slot[:, None])
        top_s = tl.where(put, best[:, None], top_s)
        top_i = tl.where(put, col[:, None], top_i)
        thresh = tl.min(top_s, axis=1)
        s = tl.where(cols[None, :] == col[:, None], float("-inf"), s)
        best = tl.max(s, axis=1)
    return top_s, top_i, thresh


@triton.jit
def _chunk_product(acc, q_base, q_ok, c_ptr, cols, stride_c, n_c, ks, d,
                   PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + Q_blk[:, ks] · C[cols, ks]ᵀ, fp32 accumulation."""
    k_ok = ks < d
    qt = tl.load(q_base + ks[None, :], mask=q_ok[:, None] & k_ok[None, :], other=0.0)
    ct = tl.load(c_ptr + cols.to(tl.int64)[:, None] * stride_c + ks[None, :],
                 mask=(cols < n_c)[:, None] & k_ok[None, :], other=0.0)
    if UPCAST:  # only under the CPU interpreter, whose bf16 dot is wrong (exact upcast)
        qt = qt.to(tl.float32)
        ct = ct.to(tl.float32)
    return tl.dot(qt, tl.trans(ct), acc, input_precision=PRECISION)


@triton.jit
def _topk_kernel(
    q_ptr, c_ptr, inv_q_ptr, inv_c_ptr, out_s_ptr, out_i_ptr,
    n_q, n_c, d, stride_q, stride_c, k, tiles_per_split, first_query_id,
    EXCLUDE_SELF: tl.constexpr, K_PAD: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr, FLAT: tl.constexpr,
):
    pid_q = tl.program_id(0)
    split = tl.program_id(1)
    q_rows = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_ok = q_rows < n_q
    q_base = q_ptr + q_rows.to(tl.int64)[:, None] * stride_q
    inv_q = tl.load(inv_q_ptr + q_rows, mask=q_ok, other=0.0)

    slots = tl.arange(0, K_PAD)
    # Slots past k hold +inf so that they are never the minimum, hence never evicted.
    top_s = tl.where(slots[None, :] < k, float("-inf"), float("inf")) + tl.zeros((BLOCK_Q, K_PAD), tl.float32)
    top_i = tl.full((BLOCK_Q, K_PAD), -1, tl.int32)
    thresh = tl.min(top_s, axis=1)

    c_lo = split * tiles_per_split * BLOCK_C
    c_hi = tl.minimum(c_lo + tiles_per_split * BLOCK_C, n_c)
    if FLAT:
        # One loop over (tile, d-chunk) steps: the pipeliner then loads the next tile's first
        # chunks while this tile merges (the nested loop drains and refills it at every tile).
        k_steps = tl.cdiv(d, BLOCK_K)
        acc = tl.zeros((BLOCK_Q, BLOCK_C), dtype=tl.float32)
        kk = -1
        c0 = c_lo - BLOCK_C
        for _ in range(0, tl.cdiv(c_hi - c_lo, BLOCK_C) * k_steps):
            kk = tl.where(kk == k_steps - 1, 0, kk + 1)
            c0 = tl.where(kk == 0, c0 + BLOCK_C, c0)
            cols = c0 + tl.arange(0, BLOCK_C)
            acc = _chunk_product(acc, q_base, q_ok, c_ptr, cols, stride_c, n_c, kk * BLOCK_K + tl.arange(0, BLOCK_K),
                                 d, PRECISION, UPCAST)
            if kk == k_steps - 1:
                s = _tile_scores(acc, inv_q, q_rows, cols, inv_c_ptr, n_c, first_query_id, EXCLUDE_SELF)
                top_s, top_i, thresh = _merge_tile(s, cols, top_s, top_i, thresh, slots, n_c, K_PAD)
                acc = tl.zeros((BLOCK_Q, BLOCK_C), dtype=tl.float32)
    else:
        for c0 in range(c_lo, c_hi, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            acc = tl.zeros((BLOCK_Q, BLOCK_C), dtype=tl.float32)
            for k0 in range(0, d, BLOCK_K):
                acc = _chunk_product(acc, q_base, q_ok, c_ptr, cols, stride_c, n_c, k0 + tl.arange(0, BLOCK_K),
                                     d, PRECISION, UPCAST)
            s = _tile_scores(acc, inv_q, q_rows, cols, inv_c_ptr, n_c, first_query_id, EXCLUDE_SELF)
            top_s, top_i, thresh = _merge_tile(s, cols, top_s, top_i, thresh, slots, n_c, K_PAD)

    # Candidates out; the +inf filler slots become -inf / -1 padding.
    real = slots[None, :] < k
    out_off = (split * n_q + q_rows).to(tl.int64)[:, None] * K_PAD + slots[None, :]
    tl.store(out_s_ptr + out_off, tl.where(real, top_s, float("-inf")), mask=q_ok[:, None])
    tl.store(out_i_ptr + out_off, tl.where(real, top_i, -1), mask=q_ok[:, None])


def _inv_norms(x: torch.Tensor) -> torch.Tensor:
    n, d = x.shape
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    if n == 0:
        return out
    block_d = min(128, max(16, triton.next_power_of_2(d)))
    block_n = max(1, 4096 // block_d)
    _inv_norm_kernel[(triton.cdiv(n, block_n),)](x, out, n, d, x.stride(0),
                                                 BLOCK_N=block_n, BLOCK_D=block_d, num_warps=8)
    return out


# Launch configs measured best on a GPU, keyed by (capability major, minor, d, dtype); anything
# else gets default_config's reasoned tiles. sm_90: H200, bench/test_bench_gpu_kernels.py sweep of 2026-11-28,
# 20k queries x 1M corpus, k = 10: 54.5 ms against 70 ms for the default 128 x 128 tile. Measured
# at k = 10 only, so used up to K_PAD 32 (a wider tile holds more candidates per merge beyond).
MEASURED = {
    (9, 0, 384, dtype): dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3)
    for dtype in (torch.float16, torch.bfloat16)
}


def launch_config(cap: tuple[int, int] | None, d: int, dtype: torch.dtype, k_pad: int,
                  fp32_precision: str = "ieee") -> dict:
    """The measured config for this device, d and dtype, else the default tiles."""
    tuned = measured(MEASURED, cap, d, dtype) if k_pad <= 32 else {}
    return tuned or default_config(dtype, k_pad, fp32_precision)


def default_config(dtype: torch.dtype, k_pad: int, fp32_precision: str = "ieee") -> dict:
    """Tile sizes for a launch; see the module docstring for the reasoning."""
    if dtype == torch.float32 and fp32_precision == "ieee":
        return dict(block_q=64, block_c=64, block_k=32, num_warps=4, num_stages=2)
    if dtype == torch.float32:  # tf32 / tf32x3 on the tensor cores: 4-byte operands, so half the BLOCK_K
        return dict(block_q=128 if k_pad <= 32 else 64, block_c=128, block_k=32, num_warps=8, num_stages=3)
    return dict(block_q=128 if k_pad <= 32 else 64, block_c=128, block_k=64, num_warps=8, num_stages=3)


def _device_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: a few splits, so that the split merge is exercised


def _pad(scores: torch.Tensor, ids: torch.Tensor, k: int):
    q, have = scores.shape
    if have >= k:
        return scores[:, :k].contiguous(), ids[:, :k].contiguous()
    s = torch.full((q, k), float("-inf"), dtype=torch.float32, device=scores.device)
    i = torch.full((q, k), -1, dtype=torch.int64, device=scores.device)
    s[:, :have] = scores
    i[:, :have] = ids
    return s, i


def cosine_topk(queries: torch.Tensor, corpus: torch.Tensor, k: int, exclude_self: bool = False,
                first_query_id: int = 0, *, fp32_precision: str = "ieee", config: dict | None = None,
                splits: int | None = None):
    """Exact cosine top-k; see the module docstring. Returns (float32[Q, k], int64[Q, k]).

    queries and corpus: [Q, d] and [C, d], one dtype of fp32, fp16 or bf16, on one device.
    exclude_self / first_query_id: query i is corpus row first_query_id + i, left out of its list.
    fp32_precision: "ieee" (default, exact fp32), "tf32x3" or "tf32" for fp32 inputs.
    config / splits: tile sizes and the number of corpus splits, for tuning and tests.
    """
    if queries.dim() != 2 or corpus.dim() != 2 or queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"cosine_topk needs [Q, d] and [C, d], got {tuple(queries.shape)} and {tuple(corpus.shape)}")
    if queries.dtype not in _FLOAT_TYPES or corpus.dtype != queries.dtype:
        raise TypeError(f"cosine_topk needs fp32, fp16 or bf16 inputs of one dtype, got {queries.dtype} and {corpus.dtype}")
    if queries.device != corpus.device:
        raise ValueError("cosine_topk: queries and corpus must be on one device")
    if k < 0:
        raise ValueError("cosine_topk: k must be >= 0")
    n_q, d = queries.shape
    n_c = corpus.shape[0]
    device = queries.device
    k_eff = min(k, n_c)
    if n_q == 0 or k_eff == 0:
        empty_s = torch.empty((n_q, 0), dtype=torch.float32, device=device)
        return _pad(empty_s, torch.empty((n_q, 0), dtype=torch.int64, device=device), k)
    if d == 0:  # every row is a zero vector: all scores 0
        queries = torch.zeros((n_q, 1), dtype=queries.dtype, device=device)
        corpus = torch.zeros((n_c, 1), dtype=corpus.dtype, device=device)
        d = 1
    queries = queries if queries.stride(1) == 1 or d == 1 else queries.contiguous()
    corpus = corpus if corpus.stride(1) == 1 or d == 1 else corpus.contiguous()

    k_pad = triton.next_power_of_2(k_eff)
    cfg = dict(launch_config(capability(device), d, queries.dtype, k_pad, fp32_precision), **(config or {}))
    bq, bc = cfg["block_q"], cfg["block_c"]
    if cfg.get("loop", "tiles") not in ("tiles", "flat"):
        raise ValueError(f"cosine_topk: config loop must be 'tiles' or 'flat', got {cfg['loop']!r}")
    q_blocks, c_tiles = triton.cdiv(n_q, bq), triton.cdiv(n_c, bc)
    if splits is None:
        splits = max(1, min(triton.cdiv(4 * _device_sms(device), q_blocks), c_tiles // 16))
    splits = max(1, min(splits, c_tiles))
    tiles_per_split = triton.cdiv(c_tiles, splits)
    splits = triton.cdiv(c_tiles, tiles_per_split)  # no empty split

    inv_q, inv_c = _inv_norms(queries), _inv_norms(corpus)
    cand_s = torch.empty((splits, n_q, k_pad), dtype=torch.float32, device=device)
    cand_i = torch.empty((splits, n_q, k_pad), dtype=torch.int32, device=device)
    precision = fp32_precision if queries.dtype == torch.float32 else "tf32"  # ignored for 16-bit inputs
    _topk_kernel[(q_blocks, splits)](
        queries, corpus, inv_q, inv_c, cand_s, cand_i,
        n_q, n_c, d, queries.stride(0), corpus.stride(0), k_eff, tiles_per_split, int(first_query_id),
        EXCLUDE_SELF=bool(exclude_self), K_PAD=k_pad,
        BLOCK_Q=bq, BLOCK_C=bc, BLOCK_K=cfg["block_k"],
        PRECISION=precision, UPCAST=(queries.dtype == torch.bfloat16 and not queries.is_cuda),
        FLAT=cfg.get("loop", "tiles") == "flat",
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )

    # Final merge of splits * k_pad candidates per query: by id, then stably by score.
    # (+ 0.0 turns a -0.0 into +0.0, which a radix sort would otherwise order below +0.0.)
    cand_s = cand_s.permute(1, 0, 2).reshape(n_q, splits * k_pad) + 0.0
    cand_i = cand_i.permute(1, 0, 2).reshape(n_q, splits * k_pad).long()
    by_id = torch.argsort(cand_i, dim=1)
    cand_s, cand_i = cand_s.gather(1, by_id), cand_i.gather(1, by_id)
    by_score = torch.sort(cand_s, dim=1, descending=True, stable=True).indices[:, :k_eff]
    return _pad(cand_s.gather(1, by_score), cand_i.gather(1, by_score), k)
