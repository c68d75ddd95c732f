"""Per-sentence token cache: every unique sentence tokenized once per tokenizer.

Ids are kept without special tokens and untruncated (up to a cap), as one flat int32 array
plus offsets, so pairs in both orders, predict, fit and every cycle reuse them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Longer sentences are cut here once; no model in use reads past 512 tokens.
MAX_CACHED_TOKENS = 512


@dataclass(frozen=True)
class Template:
    """Where a tokenizer puts its special tokens around one sentence or a pair."""

    single_prefix: tuple[int, ...]
    single_suffix: tuple[int, ...]
    pair_prefix: tuple[int, ...]
    pair_middle: tuple[int, ...]
    pair_suffix: tuple[int, ...]
    # token type of (prefix + a + middle) and of (b + suffix); None when the model has none
    pair_types: tuple[int, int] | None

    @classmethod
    def of(cls, tokenizer) -> "Template":
        """Read the template off the tokenizer itself by tokenizing two probe words."""
        a = tokenizer("hello", add_special_tokens=False)["input_ids"]
        b = tokenizer("world", add_special_tokens=False)["input_ids"]
        single = tokenizer("hello")["input_ids"]
        pair = tokenizer("hello", "world", return_token_type_ids=True)
        ids = pair["input_ids"]
        s = _find(single, a)
        ia = _find(ids, a)
        ib = _find(ids, b, start=ia + len(a))
        types = pair.get("token_type_ids")
        pair_types = None
        if types is not None and any(types) and "token_type_ids" in tokenizer.model_input_names:
            pair_types = (types[ia], types[ib])
        return cls(
            single_prefix=tuple(single[:s]),
            single_suffix=tuple(single[s + len(a):]),
            pair_prefix=tuple(ids[:ia]),
            pair_middle=tuple(ids[ia + len(a):ib]),
            pair_suffix=tuple(ids[ib + len(b):]),
            pair_types=pair_types,
        )

    @property
    def single_specials(self) -> int:
        return len(self.single_prefix) + len(self.single_suffix)

    @property
    def pair_specials(self) -> int:
        return len(self.pair_prefix) + len(self.pair_middle) + len(self.pair_suffix)


def _find(haystack: Sequence[int], needle: Sequence[int], start: int = 0) -> int:
    for i in range(start, len(haystack) - len(needle) + 1):
        if list(haystack[i:i + len(needle)]) == list(needle):
            return i
    raise ValueError("cannot locate the probe tokens in the tokenizer's output")


class TokenCache:
    def __init__(self, tokenizer, sentences: Sequence[str], batch_size: int = 2048):
        self.template = Template.of(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        lengths = np.zeros(len(sentences), dtype=np.int64)
        chunks = []
        for start in range(0, len(sentences), batch_size):
            batch = list(sentences[start:start + batch_size])
            encoded = tokenizer(batch, add_special_tokens=False, truncation=False)["input_ids"]
            for j, ids in enumerate(encoded):
                ids = ids[:MAX_CACHED_TOKENS]
                lengths[start + j] = len(ids)
                chunks.append(np.asarray(ids, dtype=np.int32))
        self.offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)
