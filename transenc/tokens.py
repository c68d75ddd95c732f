"""Per-sentence token cache: every unique sentence tokenized once per tokenizer.

Ids are kept without special tokens and untruncated, as one flat int32 array plus offsets, so
pairs in both orders, predict, fit and every cycle reuse them; transenc.packing assembles rows.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

# One call of the tokenizer takes at most this many sentences, and fewer where they hold more
# characters than this: its output takes ~2 KB a sentence, ~130 bytes a token, until it is
# flattened (40,000 texts of ~900 tokens, documents given as sentences: +1.9 GB in blocks of
# 16,384 alone).
TOKENIZE_BLOCK, TOKENIZE_BLOCK_CHARS = 16_384, 4_000_000


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
        if getattr(tokenizer, "truncation_side", "right") != "right":
            raise NotImplementedError("the packer truncates on the right, as HF does by default")
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
    """Token ids of `sentences` (no special tokens, untruncated) as flat int32 `ids` + int64 `offsets`.

    Kept untruncated because HF's longest-first pair truncation depends on both full lengths.
    """

    def __init__(self, tokenizer, sentences: Sequence[str]):
        self.template = Template.of(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        encode = _token_ids_of(tokenizer)
        ids, lengths = [], []
        # A block at a time: a million sentences at once would hold gigabytes (TOKENIZE_BLOCK).
        for start, end in _blocks(sentences):
            encoded = encode(list(sentences[start:end]))
            lengths.append(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
            ids.append(np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths[-1].sum())))
        self.offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths) if lengths else np.zeros(0, np.int64), out=self.offsets[1:])
        self.ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sentence_row_lengths(self, sentence_ids: np.ndarray | None = None) -> np.ndarray:
        """Tokens of each sentence's row (`prefix s suffix`) before any cut: all, or `sentence_ids`'."""
        return (self.lengths if sentence_ids is None else self.lengths[sentence_ids]) + self.template.single_specials

    def pair_row_lengths(self, pairs: np.ndarray) -> np.ndarray:
        """Tokens of each pair's row (`prefix a middle b suffix`) before any cut, for [N, 2] sentence ids."""
        return self.lengths[pairs].sum(1) + self.template.pair_specials


class TokenCaches:
    """One token cache per (tokenizer, sentence table), reused by every stage and cycle of a run. A
    tokenizer is known by a hash of its vocabulary and rules, the same wherever it is saved, so the
    models of every stage that share one share the cache."""

    def __init__(self):
        self.caches: dict = {}
        self.identities: dict[int, tuple] = {}

    def get(self, tokenizer, sentences: Sequence[str], owner) -> TokenCache:
        """The cache of `sentences` (those of `owner`, e.g. a PairSet, kept alive by the caller)."""
        if id(tokenizer) not in self.identities:  # computed once per tokenizer object
            backend = getattr(tokenizer, "backend_tokenizer", None)
            identity = hashlib.sha1(backend.to_str().encode()).hexdigest() if backend else tokenizer.name_or_path
            self.identities[id(tokenizer)] = (tokenizer, (type(tokenizer).__name__, identity))  # keeps id valid
        key = (self.identities[id(tokenizer)][1], id(owner))
        if key not in self.caches:
            self.caches[key] = TokenCache(tokenizer, sentences)
        return self.caches[key]


def _blocks(sentences: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of each call of the tokenizer: TOKENIZE_BLOCK sentences, fewer where they hold
    more than TOKENIZE_BLOCK_CHARS characters, and at least one."""
    ends = np.zeros(len(sentences) + 1, dtype=np.int64)  # ends[i]: the characters of the first i sentences
    np.cumsum(np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences)), out=ends[1:])
    start = 0
    while start < len(sentences):
        fits = int(np.searchsorted(ends, ends[start] + TOKENIZE_BLOCK_CHARS, side="right")) - 1
        end = max(start + 1, min(start + TOKENIZE_BLOCK, fits))
        yield start, end
        start = end


def _token_ids_of(tokenizer):
    """sentences -> their token ids, one batched call per list."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a pure-Python tokenizer
        return lambda sentences: tokenizer(sentences, add_special_tokens=False, truncation=False)["input_ids"]
    # The Rust tokenizer itself: twice as fast as tokenizer(...), which builds Python lists of every
    # field. On a copy, since HF leaves its last call's truncation and padding set on the backend.
    backend = copy.deepcopy(backend)
    backend.no_truncation()
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: tokenizers >= 0.20
    return lambda sentences: [e.ids for e in encode(sentences, add_special_tokens=False)]
