"""Texts long as files (a 50 MB line): the token cache sends them to the tokenizer in pieces
(transenc.tokens.PIECE_CHARS, _cut_characters) with the ids and lengths of the whole texts, and
bounded memory: the tokenizers library holds ~90 bytes a character of a text it tokenizes whole."""
from __future__ import annotations

import random
import re
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import AddedToken, normalizers, pre_tokenizers

import corpora
import transenc.tokens
from test_packing import bert_tokenizer, check_batches, mpnet_tokenizer
from transenc import wordpiece
from transenc.packing import pack_pairs, pack_sentences
from transenc.tokens import TokenCache

# Fragments joined at random, with and without a space between: every rule of BERT's normalizer and
# pre-tokenizer at a piece's edge (marks after a cut, CJK, controls, zero-width and Unicode spaces,
# words over WordPiece's 100 characters, the special tokens written out, an uppercase letter whose
# lowercase is two characters, the tokens added below).
FRAGMENTS = corpora.AWKWARD + corpora.CONTROL + [
    "\u0301", "e\u0301\u0327", "\u0327\u0301x", "_", "__init__", "[MASK]", "[mask]", "[SEP", "<mask>", "<s>",
    "</s>", "\t", "\n", "\r", "\r\n", "\u00a0", "\u0085", "\u2028", "\u200b", "\ufeff", "\x00", "\ufffd", "\x0b",
    "\x1f", "a" * 99, "b" * 100, "c" * 101, "中", "文字", "\U00020000", "\uf900", "\u3400", "ｱｲｳ", "İstanbul",
    "ΣΑΣ", "...", "!?", "—", "«»", "x", "7", "xyzzy", "_xyzzy_", "中qux ", "a_qux", "ünï", "ÜNÏ", "<x>", "<x", "x>",
    " ", "  ",
]


def awkward_texts(n: int = 40, seed: int = 0, fragments: int = 120, longest: int = 10_000) -> list[str]:
    """n texts of 1 to `fragments` FRAGMENTS (each of at most `longest` characters), an empty one and
    20 demo sentences."""
    rng = random.Random(seed)
    short = [f for f in FRAGMENTS if len(f) <= longest]
    texts = ["".join(rng.choice(short) + rng.choice(["", "", " "]) for _ in range(rng.randint(1, fragments)))
             for _ in range(n)]
    return texts + [""] + corpora.demo_sentences()[:20]


def wordpiece_tokenizer(default_model_path, normalizer=None, added=()):
    """The default model's tokenizer (transenc.wordpiece) with another normalizer or more added tokens."""
    tok = wordpiece.load(default_model_path)
    if normalizer is not None:
        tok.backend_tokenizer.normalizer = normalizer
    tok.backend_tokenizer.add_tokens(list(added))
    return tok


ADDED = [AddedToken("xyzzy", single_word=True), AddedToken("qux", single_word=True, normalized=False),
         AddedToken("<x>", lstrip=True, rstrip=True, normalized=False), AddedToken("ÜNÏ", normalized=True)]
TOKENIZERS = {
    "bert": lambda path: bert_tokenizer(),
    "mpnet": lambda path: mpnet_tokenizer(),  # <mask> strips the whitespace on its left
    "wordpiece": lambda path: wordpiece.load(path),
    "cased": lambda path: wordpiece_tokenizer(path, normalizers.BertNormalizer(lowercase=False, strip_accents=False)),
    "accents": lambda path: wordpiece_tokenizer(path, normalizers.BertNormalizer(lowercase=False, strip_accents=True)),
    "no-cjk": lambda path: wordpiece_tokenizer(path, normalizers.BertNormalizer(handle_chinese_chars=False)),
    "unclean": lambda path: wordpiece_tokenizer(path, normalizers.BertNormalizer(clean_text=False)),
    "added": lambda path: wordpiece_tokenizer(path, added=ADDED),
    "added-cjk": lambda path: wordpiece_tokenizer(path, added=ADDED[2:]),  # no single-word token: CJK cuts
}


def whole_ids(tok, text: str) -> list[int]:
    return tok.backend_tokenizer.encode(text, add_special_tokens=False).ids


def longest_text_tokenized(monkeypatch) -> list[int]:
    """Records the longest text of each call of the tokenizer that TokenCache makes."""
    longest, real = [], transenc.tokens._token_ids_of

    def spy(tokenizer):
        encode = real(tokenizer)

        def recorded(texts):
            longest.append(max(map(len, texts)))
            return encode(texts)
        return recorded
    monkeypatch.setattr(transenc.tokens, "_token_ids_of", spy)
    return longest


@pytest.mark.parametrize("piece", [1, 7, 60])
@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_pieces_give_the_whole_texts_ids(monkeypatch, default_model_path, name, piece):
    """Cut after nearly every cut character (pieces of 1 character and up): the ids and lengths are
    those of each text tokenized whole, and no call of the tokenizer saw a whole long text."""
    tok = TOKENIZERS[name](default_model_path)
    texts = awkward_texts()
    monkeypatch.setattr(transenc.tokens, "PIECE_CHARS", piece)
    longest = longest_text_tokenized(monkeypatch)
    cache = TokenCache(tok, texts)
    assert len(cache) == len(texts)
    for i, text in enumerate(texts):
        assert cache.tokens(i).tolist() == whole_ids(tok, text), (name, text)
    assert cache.lengths.tolist() == [len(whole_ids(tok, t)) for t in texts]
    assert max(longest) < max(map(len, texts)) // 4, "long texts went to the tokenizer whole"


def test_pieces_of_a_long_text_of_ordinary_words(monkeypatch):
    tok = bert_tokenizer()
    text = " ".join(corpora.demo_sentences() * 20)  # ~380,000 characters
    longest = longest_text_tokenized(monkeypatch)
    cache = TokenCache(tok, ["a short one", text, "another"])
    assert [cache.tokens(i).tolist() for i in range(3)] == [whole_ids(tok, t) for t in ("a short one", text, "another")]
    assert len(cache.tokens(1)) > 50_000
    assert max(longest) < len(text) // 4, "the long text went to the tokenizer whole"


PAIR_LENGTHS = (25, 32, 64)  # odd budgets for the pair's content (BERT: 22, 29; MPNet: 21): the tie-break shows


@pytest.mark.parametrize("name", ["bert", "mpnet"])
def test_rows_of_long_texts_in_pieces_equal_the_hf_tokenizer(monkeypatch, name):
    """Packed rows of texts cut into pieces equal `tokenizer(a, b, truncation=True, max_length=L)`:
    pairs with both sides long (the longer one gets the odd token), in both orders."""
    tok = bert_tokenizer() if name == "bert" else mpnet_tokenizer()
    # (HF's reference keeps each truncated pair's overflowing windows, every a window with every b
    # window: texts of a few hundred tokens at most)
    texts = awkward_texts(60, seed=1, fragments=40, longest=120)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(texts), size=(300, 2)).astype(np.int32)
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    monkeypatch.setattr(transenc.tokens, "PIECE_CHARS", 3)
    cache = TokenCache(tok, texts)
    first, second = [texts[a] for a in pairs[:, 0]], [texts[b] for b in pairs[:, 1]]
    lengths = cache.lengths[pairs]
    assert ((lengths > 40).all(1) & (lengths[:, 0] != lengths[:, 1])).sum() > 50  # both long, of unequal lengths
    types = name == "bert"
    for length in PAIR_LENGTHS:
        ref = tok(first, second, truncation=True, max_length=length, padding="max_length", return_tensors="np",
                  return_token_type_ids=types)
        check_batches(pack_pairs(cache, pairs, length, 4096), ref, len(pairs), 4096, with_types=types)
        ref = tok(texts, truncation=True, max_length=length, padding="max_length", return_tensors="np")
        ids = np.arange(len(texts), dtype=np.int32)
        check_batches(pack_sentences(cache, ids, length, 4096), ref, len(ids), 4096, with_types=False)


def test_the_cjk_ranges_are_those_the_normalizer_puts_spaces_around():
    normalizer = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=False)
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    spaced = [c for c in chars if normalizer.normalize_str(c) == f" {c} "]
    pattern = re.compile(f"[{transenc.tokens.CJK}]")
    assert spaced == [c for c in chars if pattern.fullmatch(c)]


def test_cut_characters_leave_out_what_an_added_token_holds(default_model_path):
    def cuts(tok) -> set[str]:
        pattern = transenc.tokens._cut_characters(tok)
        return {chr(c) for c in range(0x30000) if pattern.fullmatch(chr(c))}

    plain = cuts(wordpiece.load(default_model_path))
    assert {" ", "\t", "\n", "\r", ".", ",", "_", "中"} <= plain and not {"[", "]", "\u00a0", "a", "\u0301"} & plain
    assert not {"<", ">", "/"} & cuts(mpnet_tokenizer())
    added = cuts(wordpiece_tokenizer(default_model_path, added=ADDED))  # a single-word token: no `_`, no CJK
    assert "." in added and not {"_", "中", "<", ">"} & added
    no_cjk = normalizers.BertNormalizer(handle_chinese_chars=False)
    assert "中" not in cuts(wordpiece_tokenizer(default_model_path, no_cjk))
    spaced = wordpiece_tokenizer(default_model_path, added=[AddedToken("new york")])
    assert transenc.tokens._cut_characters(spaced) is None


def test_other_rules_tokenize_long_texts_whole(monkeypatch, default_model_path):
    """A pre-tokenizer other than BERT's: no cut is known to keep its ids, so texts go whole."""
    tok = wordpiece.load(default_model_path)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    assert transenc.tokens._cut_characters(tok) is None
    monkeypatch.setattr(transenc.tokens, "PIECE_CHARS", 10)
    longest = longest_text_tokenized(monkeypatch)
    texts = awkward_texts(10)
    cache = TokenCache(tok, texts)
    assert max(longest) == max(map(len, texts))
    assert all(cache.tokens(i).tolist() == whole_ids(tok, t) for i, t in enumerate(texts))


# A label of one pair with a LINE_MB line of words must peak below LIMIT_MB. Whole, the line took
# ~100 bytes a character more than a label of short pairs (0.26 GB): 2.76 GB; in pieces ~9 (the line
# as read, interned and decoded, and its ids): 0.48 GB (AMD EPYC, 2 cores).
LINE_MB, LIMIT_MB = 24, 1000


@pytest.mark.slow
def test_labelling_a_huge_line_holds_bounded_memory(tmp_path, tiny_bert):
    rng = random.Random(0)
    words = " ".join(corpora.demo_sentences()).split()
    line = " ".join(rng.choice(words) for _ in range(LINE_MB * 200_000))[:LINE_MB * 1_000_000]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{line}\ta short sentence\nanother pair\tof short sentences\n", encoding="utf-8")
    # a fresh process, whose only child is the label: RUSAGE_CHILDREN's peak is the label's own
    measure = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "transenc", "label", "--pairs",
                           str(pairs), "--model", str(tiny_bert), "--out", str(tmp_path / "out.tsv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024  # ru_maxrss: KiB on Linux
    assert peak_mb < LIMIT_MB, f"label of a {len(line) / 1e6:.0f} MB line peaked at {peak_mb:.0f} MB"
    assert len((tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()) == 2
