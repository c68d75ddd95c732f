"""Pair mining: mine_pairs semantics, agreement with faiss, and the `mine` command's I/O."""
import os
import sys
import types

import numpy as np
import pytest
import torch

from transenc import labeling, reference
from transenc.errors import InputError
from transenc.cli import cmd_mine as mine_command
from transenc.mining import mine_pairs


def brute_force_pairs(emb, k, min_score=None):
    """The contract spelt out with the float64 reference and a Python loop."""
    scores, ids = reference.cosine_topk_reference(emb, emb, k, exclude_self=True)
    seen, pairs, kept = set(), [], []
    for i in range(emb.shape[0]):
        for s, j in zip(scores[i].tolist(), ids[i].tolist()):
            if j < 0 or (min_score is not None and s < min_score):
                continue
            key = (min(i, j), max(i, j))
            if key not in seen:
                seen.add(key)
                pairs.append(key)
                kept.append(s)
    return pairs, kept


@pytest.mark.parametrize("n,k", [(1, 3), (2, 1), (7, 10), (300, 5), (1000, 1)])
def test_mine_pairs_matches_brute_force(n, k):
    emb = torch.randn(n, 48, generator=torch.Generator().manual_seed(n + k))
    pairs, scores = mine_pairs(emb, k, None)
    assert pairs.dtype == np.int32 and scores.dtype == np.float32
    assert pairs.shape == (len(scores), 2)
    want_pairs, want_scores = brute_force_pairs(emb, k)
    assert [tuple(p) for p in pairs.tolist()] == want_pairs
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert (pairs[:, 0] < pairs[:, 1]).all()  # i < j: no self pairs, each pair once
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)


def test_a_k_past_the_other_rows_asks_for_those_alone(monkeypatch):
    """`mine --k 10000000` on 7 sentences: every pair, as --k 6 gives, without 7 x 10^15 lists allocated
    (or an overflow) first."""
    from transenc import mining

    emb = torch.randn(7, 16, generator=torch.Generator().manual_seed(0))
    asked, real = [], mining.nearest_others
    monkeypatch.setattr(mining, "nearest_others", lambda emb, k, *a: asked.append(k) or real(emb, k, *a))
    huge, six = mine_pairs(emb, 10**15), mine_pairs(emb, 6)
    assert asked == [6, 6] and np.array_equal(huge[0], six[0]) and len(huge[0]) == 7 * 6 // 2


@pytest.mark.parametrize("n, k, block", [(1, 3, 1), (50, 4, 7), (64, 1, 32), (333, 6, 100)])
def test_neighbours_asked_in_blocks_are_the_whole_calls(n, k, block, monkeypatch):
    from transenc import mining, ops

    g = torch.Generator().manual_seed(n)
    emb = torch.randn(n, 24, generator=g)
    emb[1::5] = emb[0]  # ties: a row's copies score as the row itself does (lower id first)
    emb[3::11] = 0  # zero rows score 0 against everything
    monkeypatch.setattr(mining, "QUERY_BLOCK", block)
    scores, ids = mining.nearest_others(emb, k)
    want_scores, want_ids = ops.cosine_topk(emb, emb, k, exclude_self=True)
    assert np.array_equal(ids, want_ids.numpy()) and np.array_equal(scores, want_scores.numpy())


def test_mine_pairs_min_score_filters():
    emb = torch.randn(400, 32, generator=torch.Generator().manual_seed(3))
    pairs, scores = mine_pairs(emb, 8, None)
    kept_pairs, kept_scores = mine_pairs(emb, 8, 0.4)
    assert (kept_scores >= 0.4).all() and 0 < len(kept_scores) < len(scores)
    mask = scores >= 0.4  # a pair scores the same from either side, so filtering commutes with dedup
    assert np.array_equal(kept_pairs, pairs[mask]) and np.array_equal(kept_scores, scores[mask])
    want_pairs, _ = brute_force_pairs(emb, 8, 0.4)
    assert [tuple(p) for p in kept_pairs.tolist()] == want_pairs
    empty, none = mine_pairs(emb, 8, 1.5)
    assert empty.shape == (0, 2) and none.shape == (0,)
    at_least, _ = mine_pairs(emb, 8, float(scores.min()))  # a pair at exactly min_score is kept
    assert np.array_equal(at_least, pairs)


def test_mine_pairs_agrees_with_faiss():
    faiss = pytest.importorskip("faiss")
    emb = torch.nn.functional.normalize(torch.randn(2000, 64, generator=torch.Generator().manual_seed(4)), dim=1)
    k = 5
    index = faiss.IndexFlatIP(64)
    index.add(emb.numpy())
    _, ids = index.search(emb.numpy(), k + 1)
    faiss_pairs = set()
    for i, row in enumerate(ids.tolist()):
        neighbours = [j for j in row if j != i][:k]
        faiss_pairs.update((min(i, j), max(i, j)) for j in neighbours)
    ours = {tuple(p) for p in mine_pairs(emb, k, None)[0].tolist()}
    # exact fp32 on both sides: only a near-tie at rank k could differ
    assert len(ours ^ faiss_pairs) <= 0.001 * len(faiss_pairs)


# ---- the mine command ------------------------------------------------------------------


class FakeBiEncoder:
    """Bag-of-letters embeddings: sentences sharing letters are near. Records its inputs."""

    calls = []

    device = torch.device("cpu")
    model = types.SimpleNamespace(config=types.SimpleNamespace(architectures=["BertModel"]))  # no pair head

    @classmethod
    def load(cls, name, device=None, inference=False):
        assert name == "fake-model"
        return cls()

    max_length = 512

    def token_cache(self, sentences):  # its cache: the sentences themselves
        return list(sentences)

    def rows_cut(self, cache, rows):
        return 0

    def encode(self, sentences, batch_size, precision="auto", group=None, kept=None):
        FakeBiEncoder.calls.append((list(sentences), batch_size))
        out = torch.zeros(len(sentences), 26)
        for row, s in enumerate(sentences):
            for ch in s.lower():
                if "a" <= ch <= "z":
                    out[row, ord(ch) - 97] += 1
        if kept is not None:  # kept as the real pass keeps them, in one batch
            whole = [types.SimpleNamespace(rows=np.arange(len(sentences)))]
            rows, _ = kept.open(tuple(out.shape), whole, self.device)
            rows[:] = out
            kept.finished(1, whole[0].rows, rows)
        return out


@pytest.fixture
def fake_models(monkeypatch):
    from transenc import models

    module = types.ModuleType("transenc.models")  # the real one's names (what modules import), BiEncoder faked
    module.__dict__.update({k: v for k, v in vars(models).items() if not k.startswith("__")}, BiEncoder=FakeBiEncoder)
    monkeypatch.setitem(sys.modules, "transenc.models", module)
    monkeypatch.setattr(labeling, "BiEncoder", FakeBiEncoder)  # what load_scorer loads, imported before
    FakeBiEncoder.calls.clear()


def args_for(path, out, k=2, min_score=None, resume=False):
    return types.SimpleNamespace(sentences=str(path), k=k, min_score=min_score, precision="auto", out=str(out) if out else None,
                                 model="fake-model", batch_size=7, device=None, resume=resume)


def test_mine_command_writes_pairs(tmp_path, fake_models):
    src = tmp_path / "sentences.txt"
    src.write_bytes("abc\nabd\nxyz\nabc\nxyw\r\nünï abc\n".encode("utf-8"))
    out = tmp_path / "pairs.tsv"
    out.write_text("old content\n")
    mine_command(args_for(src, out, k=1))
    (encoded, batch_size), = FakeBiEncoder.calls
    assert encoded == ["abc", "abd", "xyz", "xyw", "ünï abc"]  # unique, first-seen order, \r dropped
    assert batch_size == 7
    lines = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(len(line) == 3 for line in lines)
    emb = FakeBiEncoder().encode(encoded, 1)
    pairs, scores = mine_pairs(emb, 1, None)
    assert lines == [[encoded[i], encoded[j], f"{s:.6f}"] for (i, j), s in zip(pairs.tolist(), scores.tolist())]
    assert [line[:2] for line in lines] == [["abc", "ünï abc"], ["abc", "abd"], ["xyz", "xyw"]]
    assert sorted(os.listdir(tmp_path)) == ["pairs.tsv", "sentences.txt"]  # no temp file left


def test_mine_command_min_score_and_stdout(tmp_path, fake_models, capsys):
    src = tmp_path / "s.txt"
    src.write_text("abc\nabd\nxyz\nxyw\n", encoding="utf-8")
    mine_command(args_for(src, None, k=3, min_score=0.6))
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines and all(float(s) >= 0.6 for _, _, s in lines)
    assert {tuple(line[:2]) for line in lines} == {("abc", "abd"), ("xyz", "xyw")}


@pytest.mark.parametrize(
    "content,line,reason",
    [
        (b"", 1, "empty file"),
        (b"one\n\nthree\n", 2, "empty line"),
        (b"one\ntwo\n   \n", 3, "empty line"),
        (b"one\ntw\xffo\n", 2, "invalid UTF-8 at byte 2 of the line"),  # of the line, as label says it
        (b"ok\nok\n\xc3", 3, "invalid UTF-8 at byte 0 of the line"),
        (b"a\tb\n", 1, "tab"),
        (b"one\ntw\x00o\n", 2, "NUL byte in a sentence"),  # label and train would refuse the pairs mined
    ],
)
def test_mine_command_rejects_bad_input(tmp_path, fake_models, content, line, reason):
    src = tmp_path / "bad.txt"
    src.write_bytes(content)
    out = tmp_path / "out.tsv"
    with pytest.raises(InputError) as err:
        mine_command(args_for(src, out))
    assert err.value.path == str(src) and err.value.line == line and reason in err.value.reason
    assert not out.exists() and not FakeBiEncoder.calls
