"""The single door to the scoring engine.

Each op picks the Triton kernel (transenc.kernels) for CUDA tensors and the C++ engine
(transenc._C) for CPU tensors. A plain-torch `*_reference` sits beside each op for tests.
"""
from __future__ import annotations

import numpy as np
import torch

from transenc import _C


def _cpu_float32(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


def pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a[i], b[i]) as float32[N]; a zero row gives 0."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"pair_cosine needs two [N, d] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.is_cuda:
        from transenc.kernels import pair_cosine as kernel

        return kernel.pair_cosine(a, b)
    return torch.from_numpy(_C.pair_cosine(_cpu_float32(a), _cpu_float32(b)))


def pair_cosine_indexed(table: torch.Tensor, idx: torch.Tensor | np.ndarray) -> torch.Tensor:
    """cos(table[idx[i, 0]], table[idx[i, 1]]) as float32[N], the gather fused into the pass."""
    idx = torch.as_tensor(idx)
    if table.dim() != 2 or idx.dim() != 2 or idx.shape[1] != 2:
        raise ValueError("pair_cosine_indexed needs table [R, d] and idx [N, 2]")
    if table.is_cuda:
        from transenc.kernels import pair_cosine as kernel

        return kernel.pair_cosine_indexed(table, idx.to(table.device, torch.int32))
    ids = idx.to(torch.int32).contiguous().numpy()
    return torch.from_numpy(_C.pair_cosine_indexed(_cpu_float32(table), ids))


def pair_cosine_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a64, b64 = a.double(), b.double()
    dot = (a64 * b64).sum(-1)
    denom = a64.norm(dim=-1) * b64.norm(dim=-1)
    return torch.where(denom > 0, dot / denom.clamp_min(1e-300), torch.zeros_like(dot)).float()
