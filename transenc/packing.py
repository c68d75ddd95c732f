"""Length-sorted token-budget batches built from a TokenCache by the C++ packer, never re-tokenizing.

Rows equal `tokenizer(a, b, truncation=True, max_length=L)` (and `tokenizer(s, ...)` for single
sentences) token for token. All batches of one call share one flat buffer per field: each Batch
holds views into it (torch.from_numpy, no copy). Each Batch carries `rows`: the request rows it
holds, so results scatter back to input order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from transenc import _C
from transenc.tokens import TokenCache

if not hasattr(_C, "pack_pairs"):
    raise ImportError("transenc._C has no packer: rebuild it (python setup.py build_ext --inplace)")

# Ids, masks and types are int32 by default: BERT, RoBERTa and MPNet embeddings take int32 indices
# and give identical outputs, and it halves memory and host-to-device bytes. int64 on request.
_INDEX_DTYPES = {torch.int32: False, torch.int64: True}
# Padding target of the design (~5%): the packer shrinks the token budget until it is met. Pass 0
# for full-budget batches whatever the padding (fewer, larger forwards: may suit a GPU on few rows).
MIN_EFFICIENCY = 0.95


@dataclass
class Batch:
    input_ids: torch.Tensor  # int32 (or int64) [B, T]
    attention_mask: torch.Tensor  # same dtype [B, T]
    token_type_ids: torch.Tensor | None  # None when the model has no token types, and for single sentences
    rows: np.ndarray  # int64 [B]: request row of each batch row

    def model_inputs(self, device) -> dict:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids
        return {k: to_device(v, device) for k, v in inputs.items()}

    def padded(self, rows: int, width: int, pad_id: int) -> "Batch":
        """This batch grown to [rows, width] (a fixed shape, for devices that pay per new shape).
        Extra tokens are masked pads, so the real rows' outputs do not change; extra rows are one
        attended pad token each (a fully masked row could give NaN, and NaN leaks into gradients)
        and are not in `rows`: callers keep out[:len(batch.rows)]."""
        r, w = self.input_ids.shape
        if (r, w) == (rows, width):
            return self
        ids = self.input_ids.new_full((rows, width), pad_id)
        ids[:r, :w] = self.input_ids
        mask = self.attention_mask.new_zeros((rows, width))
        mask[:r, :w] = self.attention_mask
        mask[r:, 0] = 1
        types = None
        if self.token_type_ids is not None:
            types = self.token_type_ids.new_zeros((rows, width))
            types[:r, :w] = self.token_type_ids
        return Batch(ids, mask, types, self.rows)


def padded_to_multiples(batches: list[Batch], row_multiple: int, token_multiple: int, max_length: int,
                        pad_id: int) -> list[Batch]:
    """Each batch grown to rows and width rounded up to these multiples (width capped at max_length):
    a few shapes instead of one per batch, for devices that pay for every new shape."""
    def up(x: int, multiple: int) -> int:
        return -(-x // multiple) * multiple

    return [b.padded(up(len(b.rows), row_multiple), min(up(b.input_ids.shape[1], token_multiple), max_length), pad_id)
            for b in batches]


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """Host to device without stalling the host: from pinned memory, asynchronously, on CUDA
    (a copy from pageable memory waits for the device's queue to drain)."""
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def truncate_longest_first(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths kept by the HF tokenizers' longest-first truncation of a pair to `budget` tokens."""
    return _C.truncate_longest_first(len_a, len_b, budget)


def pack_pairs(
    cache: TokenCache, pairs: np.ndarray, max_length: int, token_budget: int,
    dtype: torch.dtype = torch.int32, min_efficiency: float = MIN_EFFICIENCY,
) -> list[Batch]:
    """Batches of `prefix a middle b suffix` rows for the int32[N, 2] sentence-index `pairs`."""
    t = cache.template
    packed = _C.pack_pairs(
        cache.ids, cache.offsets, np.asarray(pairs, dtype=np.int32).reshape(-1, 2),
        t.pair_prefix, t.pair_middle, t.pair_suffix, t.pair_types,
        max_length, token_budget, min_efficiency, cache.pad_id, _INDEX_DTYPES[dtype],
    )
    return _batches(packed)


def pack_sentences(
    cache: TokenCache, sentence_ids: np.ndarray, max_length: int, token_budget: int,
    dtype: torch.dtype = torch.int32, min_efficiency: float = MIN_EFFICIENCY,
) -> list[Batch]:
    """Batches of `prefix s suffix` rows for single sentences (token types left to the model: all 0)."""
    t = cache.template
    packed = _C.pack_sentences(
        cache.ids, cache.offsets, np.asarray(sentence_ids, dtype=np.int32).reshape(-1),
        t.single_prefix, t.single_suffix, max_length, token_budget, min_efficiency, cache.pad_id,
        _INDEX_DTYPES[dtype],
    )
    return _batches(packed)


def _batches(packed: dict) -> list[Batch]:
    ids = torch.from_numpy(packed["input_ids"])
    mask = torch.from_numpy(packed["attention_mask"])
    types = packed["token_type_ids"]
    types = torch.from_numpy(types) if types is not None else None
    rows, row_at, at, widths = packed["rows"], packed["batch_rows"], packed["batch_offset"], packed["batch_width"]
    batches = []
    for k, width in enumerate(widths.tolist()):
        shape = (int(row_at[k + 1] - row_at[k]), width)
        part = slice(int(at[k]), int(at[k + 1]))
        batches.append(Batch(
            ids[part].view(shape), mask[part].view(shape),
            types[part].view(shape) if types is not None else None,
            rows[row_at[k]:row_at[k + 1]],
        ))
    return batches


def padding_efficiency(batches: list[Batch]) -> float:
    """Real tokens / all tokens (real + padding) over the batches."""
    real = sum(int(b.attention_mask.sum()) for b in batches)
    total = sum(b.attention_mask.numel() for b in batches)
    return real / total if total else 1.0
