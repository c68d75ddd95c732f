"""Per-sentence token cache: every unique sentence tokenized once per tokenizer.

Ids are kept without special tokens and untruncated, as one flat int32 array plus offsets, so
pairs in both orders, predict, fit and every cycle reuse them; transenc.packing assembles rows.
A text long as a file goes to the tokenizer in pieces that give the same ids (PIECE_CHARS).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import re
import string
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

# One call of the tokenizer takes at most this many sentences, and fewer where they hold more
# characters than this: its output takes ~2 KB a sentence, ~130 bytes a token, until it is
# flattened (40,000 texts of ~900 tokens, documents given as sentences: +1.9 GB in blocks of
# 16,384 alone).
TOKENIZE_BLOCK, TOKENIZE_BLOCK_CHARS = 16_384, 4_000_000
# A text longer than this goes to the tokenizer in pieces of about this many characters, cut where
# its ids are the pieces' ids end to end (_cut_characters): the tokenizers library holds ~90 bytes a
# character of a text while it tokenizes it (one 50 MB line took 4.3 GB), and a block of pieces
# is bounded like any other block. A run without a cut character still goes whole.
PIECE_CHARS = 1 << 16
# BertNormalizer's CJK ranges (tokenizers' is_chinese_char), around whose characters it puts spaces
CJK = ("\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f"
       "\U0002b920-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f")


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
        pieces = np.ones(len(sentences), dtype=np.int64)  # each sentence's pieces (_pieces)
        ids, lengths = [], []
        # A block at a time: a million sentences at once would hold gigabytes (TOKENIZE_BLOCK).
        for block in _blocks(_pieces(sentences, _cut_characters(tokenizer), pieces)):
            encoded = encode(block)
            lengths.append(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
            ids.append(np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths[-1].sum())))
        ends = np.zeros(int(pieces.sum()) + 1, dtype=np.int64)  # ends[k]: the ids of the first k pieces
        np.cumsum(np.concatenate(lengths) if lengths else np.zeros(0, np.int64), out=ends[1:])
        self.offsets = ends[np.concatenate(([0], np.cumsum(pieces)))]
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


def _blocks(texts: Iterable[str]) -> Iterator[list[str]]:
    """The texts in calls of the tokenizer: TOKENIZE_BLOCK texts, fewer where they hold more than
    TOKENIZE_BLOCK_CHARS characters, and at least one."""
    block, chars = [], 0
    for text in texts:
        if block and (len(block) == TOKENIZE_BLOCK or chars + len(text) > TOKENIZE_BLOCK_CHARS):
            yield block
            block, chars = [], 0
        block.append(text)
        chars += len(text)
    if block:
        yield block


def _pieces(sentences: Sequence[str], cut: re.Pattern | None, counts: np.ndarray) -> Iterator[str]:
    """Each sentence; one over PIECE_CHARS characters (where `cut` is known) in pieces, each ending
    at the first cut character past its PIECE_CHARS (a run without one goes whole). counts[i]:
    sentence i's pieces, counted here (1 to start with)."""
    for i, text in enumerate(sentences):
        start = 0
        while cut is not None and len(text) - start > PIECE_CHARS:
            at = cut.search(text, start + PIECE_CHARS)
            if at is None:
                break
            yield text[start:at.end()]
            start = at.end()
            counts[i] += 1
        yield text[start:] if start else text


def _cut_characters(tokenizer) -> re.Pattern | None:
    """The characters after which a text may be cut, its ids then being its pieces' ids end to end;
    None where the tokenizer's rules are not BERT's (BertNormalizer, BertPreTokenizer): its long
    texts go whole.

    BERT's normalizer works character by character (NFD reorders marks between starters only, and
    these are starters), and an ASCII space, tab, line break or punctuation mark, or a CJK character
    where the normalizer puts spaces around them, ends a word and starts the next (whitespace that
    an added token strips on its side gives no ids either way). Left out: the characters an added
    token holds, as written or normalized ([MASK], <s>), which a cut could split; where a token must
    stand as a single word, those a word holds (`_`, CJK), after which it would stand at a piece's
    start; and all where a token holds whitespace."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import normalizers, pre_tokenizers

    normalizer = backend.normalizer
    if not (isinstance(normalizer, normalizers.BertNormalizer)
            and isinstance(backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer)):
        return None
    added = backend.get_added_tokens_decoder().values()
    held = "".join(t.content + normalizer.normalize_str(t.content) for t in added)
    if any(c.isspace() for c in held):
        return None
    single_word = any(t.single_word for t in added)
    cuts = set(" \t\n\r" + string.punctuation) - set(held) - ({"_"} if single_word else set())
    cjk = normalizer.handle_chinese_chars and not single_word and not re.search(f"[{CJK}]", held)
    return re.compile("[" + re.escape("".join(sorted(cuts))) + (CJK if cjk else "") + "]")


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
