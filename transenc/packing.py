"""Length-sorted token-budget batches built from a TokenCache, never re-tokenizing.

Each Batch carries `rows`: the request rows it holds, so results scatter back to input order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from transenc.tokens import TokenCache


@dataclass
class Batch:
    input_ids: torch.Tensor  # int64 [B, T]
    attention_mask: torch.Tensor  # int64 [B, T]
    token_type_ids: torch.Tensor | None
    rows: np.ndarray  # int64 [B]: request row of each batch row

    def model_inputs(self, device) -> dict:
        inputs = {"input_ids": self.input_ids.to(device), "attention_mask": self.attention_mask.to(device)}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids.to(device)
        return inputs


def truncate_longest_first(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths kept by the HF tokenizers' longest-first truncation of a pair to `budget` tokens."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def _sorted_groups(lengths: np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Rows sorted by length, cut into groups whose padded size fits the token budget."""
    order = np.argsort(lengths, kind="stable")
    groups, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * lengths[order[end]] <= token_budget:
            end += 1
        groups.append(order[start:end])
        start = end
    return groups


def pack_sentences(cache: TokenCache, sentence_ids: np.ndarray, max_length: int, token_budget: int) -> list[Batch]:
    t = cache.template
    keep = max_length - t.single_specials
    rows_tokens = []
    for s in sentence_ids:
        rows_tokens.append(list(t.single_prefix) + cache.tokens(int(s))[:keep].tolist() + list(t.single_suffix))
    return _to_batches(rows_tokens, None, cache.pad_id, token_budget)


def pack_pairs(cache: TokenCache, pairs: np.ndarray, max_length: int, token_budget: int) -> list[Batch]:
    t = cache.template
    budget = max_length - t.pair_specials
    rows_tokens, rows_types = [], []
    for a, b in pairs:
        ta, tb = cache.tokens(int(a)), cache.tokens(int(b))
        la, lb = truncate_longest_first(len(ta), len(tb), budget)
        first = list(t.pair_prefix) + ta[:la].tolist() + list(t.pair_middle)
        second = tb[:lb].tolist() + list(t.pair_suffix)
        rows_tokens.append(first + second)
        if t.pair_types is not None:
            rows_types.append([t.pair_types[0]] * len(first) + [t.pair_types[1]] * len(second))
    return _to_batches(rows_tokens, rows_types if t.pair_types is not None else None, cache.pad_id, token_budget)


def _to_batches(rows_tokens, rows_types, pad_id: int, token_budget: int) -> list[Batch]:
    lengths = np.array([len(r) for r in rows_tokens], dtype=np.int64)
    batches = []
    for group in _sorted_groups(lengths, token_budget):
        width = int(lengths[group].max())
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        types = torch.zeros((len(group), width), dtype=torch.long) if rows_types is not None else None
        for r, row in enumerate(group):
            n = lengths[row]
            ids[r, :n] = torch.tensor(rows_tokens[row])
            mask[r, :n] = 1
            if types is not None:
                types[r, :n] = torch.tensor(rows_types[row])
        batches.append(Batch(ids, mask, types, group.astype(np.int64)))
    return batches


def padding_efficiency(batches: list[Batch]) -> float:
    real = sum(int(b.attention_mask.sum()) for b in batches)
    total = sum(b.attention_mask.numel() for b in batches)
    return real / total if total else 1.0
