"""Plain-torch float64 references of the engine's ops, for the tests and benchmarks.

One home for them, at the bottom of the package: transenc.ops (the C++ engine) and
transenc.kernels (the Triton kernels) are both checked against these functions, and this module
imports nothing from transenc, so neither of them has to import the other to reach it.
"""
from __future__ import annotations

import torch


def pair_cosine_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a64, b64 = a.double(), b.double()
    dot = (a64 * b64).sum(-1)
    denom = a64.norm(dim=-1) * b64.norm(dim=-1)
    return torch.where(denom > 0, dot / denom.clamp_min(1e-300), torch.zeros_like(dot)).float()


def pair_cosine_indexed_reference(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    idx = torch.as_tensor(idx).long()
    return pair_cosine_reference(table[idx[:, 0]], table[idx[:, 1]])


def cosine_matrix_reference(queries: torch.Tensor, corpus: torch.Tensor) -> torch.Tensor:
    """float64 [Q, C] cosines on the CPU (0 for a zero row): raw dot products, then divided by
    the norms, so that exactly orthogonal rows give exactly 0 and duplicate rows tie exactly."""
    q, c = queries.detach().cpu().double(), corpus.detach().cpu().double()
    inv_q, inv_c = q.norm(dim=1), c.norm(dim=1)
    inv_q = torch.where(inv_q > 0, 1 / inv_q.clamp_min(1e-300), torch.zeros_like(inv_q))
    inv_c = torch.where(inv_c > 0, 1 / inv_c.clamp_min(1e-300), torch.zeros_like(inv_c))
    return (q @ c.T) * inv_q[:, None] * inv_c[None, :]


def cosine_topk_reference(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, exclude_self: bool = False, first_query_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same contract in float64 with the full score matrix: (scores float64, ids int64)."""
    scores = cosine_matrix_reference(queries, corpus)
    if exclude_self:
        rows = torch.arange(scores.shape[0])
        own = rows + first_query_id
        inside = own < scores.shape[1]
        scores[rows[inside], own[inside]] = float("-inf")
    # A stable descending sort keeps equal scores in id order: ties go to the lower id.
    scores, ids = torch.sort(scores, dim=1, descending=True, stable=True)
    scores, ids = scores[:, :k], ids[:, :k]
    ids = torch.where(torch.isinf(scores), torch.full_like(ids, -1), ids)  # excluded self
    pad = k - scores.shape[1]
    if pad > 0:
        scores = torch.cat([scores, scores.new_full((scores.shape[0], pad), float("-inf"))], 1)
        ids = torch.cat([ids, ids.new_full((ids.shape[0], pad), -1)], 1)
    return scores, ids


def quantize_rows_reference(x: torch.Tensor, shift: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """quantize_rows in float64 (quantize_rows_u8: shift 0): (q as float64, scale, offset); a constant
    row: scale 0, q -shift."""
    x64 = x.double()
    low, high = x64.amin(1), x64.amax(1)
    scale = (high - low) / 255
    steps = (x64 - low[:, None]) / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
    return torch.round(steps).clamp(0, 255) - shift, scale, low + shift * scale


def attention_reference(qkv: torch.Tensor, key_mask: torch.Tensor, heads: int) -> torch.Tensor:
    """ops.attention in float64: softmax(q k^T / sqrt(dh)) v per head over the kept keys, from a fused
    query/key/value projection [b, t, 3 * heads * dh]; a row without a kept key gives zeros."""
    b, t, width = qkv.shape
    q, k, v = qkv.double().view(b, t, 3, heads, width // (3 * heads)).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    return (weights @ v).transpose(1, 2).reshape(b, t, width // 3)
