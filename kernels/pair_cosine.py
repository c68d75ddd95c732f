"""Row-wise cosine of pairs: cos(a[i], b[i]), and the indexed form over an embedding table.

Design. The op reads 2·N·d elements and writes N floats, so it is bound by memory bandwidth
(10M x 384 fp32 is 30.7 GB of input; at the H200's ~4.3 TB/s copy rate that is ~7 ms). One
program owns BLOCK_N rows and walks d in BLOCK_D-wide chunks, keeping three [BLOCK_N, BLOCK_D]
fp32 accumulators (a·b, a·a, b·b) and reducing them once at the end, so each input element is
loaded exactly once and the reductions are paid once per row, not per chunk.

- BLOCK_D = 128 (fewer for small d, at least 16): a 128-wide chunk of an fp32 row is 512
  contiguous bytes, i.e. 32 lanes x 16-byte loads; d = 384 is exactly 3 chunks, d = 768 six,
  and d that are not multiples (1, 7, 1000) are handled by masks.
- BLOCK_N = 4096 / BLOCK_D rows (32 at d >= 128), 8 warps: each loop step issues 16-byte loads
  for 2 x 16 KB (fp32) per program. Compiled ahead of time for sm_90a (Triton 3.9, no GPU) the
  fp32 kernel takes 124 registers a thread, no spills, 4 x 16-byte loads per tensor per step,
  so two programs (16 warps) share an SM; that concurrency, not a deep loop (only d / BLOCK_D
  steps long), is what hides DRAM latency. (8192 / BLOCK_D rows for fp16 compiled to 168
  registers, one program per SM, so 16-bit inputs keep the same row count and move half the bytes.)
- Row offsets are int64: 10M x 384 elements is past 2^31.
- The indexed form loads the two int32 row ids of each pair and gathers the table rows inside
  the same loop, so E[idx[:, 0]] and E[idx[:, 1]] are never materialised.
- Accumulation is fp32 whatever the input dtype; the output is fp32. The cosine is
  dot / (sqrt(a·a) · sqrt(b·b)) (two square roots, not sqrt of the product, so large norms do
  not overflow), and 0 where either norm is 0: a zero vector gives 0, never NaN.

These block sizes were reasoned before any GPU run; an H200 has measured them since
(bench/results/gpu-check-nvidia-h200.md: Triton 3.6, 10M x 384, device copy ceiling 4.25 TB/s).
fp32 through the launch table (MEASURED below: 16 rows at 4 warps) took 6.94 ms, 4,428 GB/s
(7.77 ms, 3,952 GB/s timed again); in the same sweep 64 rows at 8 warps took 6.84 ms (4,491 GB/s)
and one-shot 512-wide blocks 8.2-10.1 ms. fp16 / bf16 on the defaults (32 rows, 8 warps): 4.06 /
4.09 ms, ~3.8 TB/s; the indexed fp32 form, gather fused: 7.29 ms, 4,225 GB/s. Other devices, d and
dtypes keep the defaults; bench/test_bench_gpu_kernels.py's sweep is what measures them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from transenc.kernels import capability, measured

_FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _pair_cosine_kernel(
    a_ptr, b_ptr, idx_ptr, out_ptr,
    n, d, stride_a, stride_b,
    INDEXED: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    if INDEXED:
        ra = tl.load(idx_ptr + 2 * rows, mask=row_ok, other=0).to(tl.int64)
        rb = tl.load(idx_ptr + 2 * rows + 1, mask=row_ok, other=0).to(tl.int64)
    else:
        ra = rows
        rb = rows
    a_rows = a_ptr + ra * stride_a
    b_rows = b_ptr + rb * stride_b

    ab = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    aa = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    bb = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for d0 in range(0, d, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        mask = row_ok[:, None] & (cols < d)[None, :]
        x = tl.load(a_rows[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        y = tl.load(b_rows[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        ab += x * y
        aa += x * x
        bb += y * y
    dot = tl.sum(ab, axis=1)
    denom = tl.sqrt(tl.sum(aa, axis=1)) * tl.sqrt(tl.sum(bb, axis=1))
    cos = tl.where(denom > 0.0, dot / tl.where(denom > 0.0, denom, 1.0), 0.0)
    tl.store(out_ptr + rows, cos, mask=row_ok)


# Launch configs measured best on a GPU, keyed by (capability major, minor, d, dtype); anything
# else gets _blocks' reasoned defaults. sm_90: H200, bench/test_bench_gpu_kernels.py sweep of 2026-11-28, 10M
# pairs: 6.7 ms (4.56 TB/s) against 8.8 ms for the default 32 rows at 8 warps.
MEASURED = {
    (9, 0, 384, torch.float32): dict(block_n=16, num_warps=4),
}


def _blocks(d: int, block_n: int | None, block_d: int | None):
    if block_d is None:
        block_d = min(128, max(16, triton.next_power_of_2(d)))
    if block_n is None:
        block_n = max(1, 4096 // block_d)
    return block_n, block_d


def _rows_contiguous(x: torch.Tensor) -> torch.Tensor:
    # Rows may be strided (a slice of a wider table); elements within a row must be adjacent.
    return x if x.stride(1) == 1 or x.shape[1] == 1 else x.contiguous()


def _launch(a, b, idx, n, out, block_n, block_d, num_warps):
    d = a.shape[1]
    if (block_n, block_d, num_warps) == (None, None, None):
        tuned = measured(MEASURED, capability(a.device), d, a.dtype)
        block_n, num_warps = tuned.get("block_n"), tuned.get("num_warps")
    block_n, block_d = _blocks(d, block_n, block_d)
    num_warps = num_warps or 8
    if out is None:
        out = torch.empty(n, dtype=torch.float32, device=a.device)
    if n == 0:
        return out
    grid = (triton.cdiv(n, block_n),)
    _pair_cosine_kernel[grid](
        a, b, idx if idx is not None else a, out,
        n, d, a.stride(0), b.stride(0),
        INDEXED=idx is not None, BLOCK_N=block_n, BLOCK_D=block_d,
        num_warps=num_warps,
    )
    return out


def pair_cosine(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None,
                block_n: int | None = None, block_d: int | None = None, num_warps: int | None = None) -> torch.Tensor:
    """cos(a[i], b[i]) as float32[N] for a, b of shape [N, d] (fp32, fp16 or bf16, one dtype).

    `out` (float32[N], optional) receives the result; the block arguments exist for tuning.
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"pair_cosine needs two [N, d] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype not in _FLOAT_TYPES or b.dtype != a.dtype:
        raise TypeError(f"pair_cosine needs fp32, fp16 or bf16 inputs of one dtype, got {a.dtype} and {b.dtype}")
    if a.shape[1] == 0:
        return torch.zeros(a.shape[0], dtype=torch.float32, device=a.device)
    a, b = _rows_contiguous(a), _rows_contiguous(b)
    return _launch(a, b, None, a.shape[0], out, block_n, block_d, num_warps)


def pair_cosine_indexed(table: torch.Tensor, idx: torch.Tensor, *, out: torch.Tensor | None = None,
                        block_n: int | None = None, block_d: int | None = None, num_warps: int | None = None,
                        check_bounds: bool = True) -> torch.Tensor:
    """cos(table[idx[i, 0]], table[idx[i, 1]]) as float32[N]; idx is int32[N, 2] on table's device.

    The gather is fused into the kernel. With `check_bounds` (the default) the ids are checked
    against the table first: one small reduction over idx and one device sync, because a
    kernel reading out of range would return garbage silently.
    """
    if table.dim() != 2 or idx.dim() != 2 or idx.shape[1] != 2:
        raise ValueError("pair_cosine_indexed needs table [R, d] and idx [N, 2]")
    if table.dtype not in _FLOAT_TYPES:
        raise TypeError(f"pair_cosine_indexed needs an fp32, fp16 or bf16 table, got {table.dtype}")
    if idx.device != table.device:
        raise ValueError("pair_cosine_indexed: idx must be on the table's device")
    idx = idx.to(torch.int32).contiguous()
    n = idx.shape[0]
    if check_bounds and n > 0:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= table.shape[0]:
            raise IndexError(f"pair_cosine_indexed: ids span [{lo}, {hi}], table has {table.shape[0]} rows")
    if table.shape[1] == 0:
        return torch.zeros(n, dtype=torch.float32, device=table.device)
    table = _rows_contiguous(table)
    return _launch(table, table, idx, n, out, block_n, block_d, num_warps)
