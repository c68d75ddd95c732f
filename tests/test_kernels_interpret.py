"""The Triton kernels against float64 references, on a GPU or under the Triton interpreter.

Two ways in, one set of checks:
- With a CUDA device, the checks run on it, compiled (parameter device="cuda").
- Without TRITON_INTERPRET=1 in this process, `test_under_interpreter` runs this file again in a
  subprocess with TRITON_INTERPRET=1, where the same checks run on CPU tensors (device="cpu").
  The interpreter has to be chosen before Triton compiles anything, and other test files may
  import triton (through torch or sentence-transformers) before this one, so a fresh process
  is the robust way. A failing check in the child fails that test here.
Shapes are small and awkward (not multiples of the blocks) to keep the interpreter fast.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from source_tree import REPO, use_source_tree

use_source_tree()
from transenc import reference  # noqa: E402
from transenc.kernels import cosine_topk as ct  # noqa: E402
from transenc.kernels import pair_cosine as pc  # noqa: E402

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
if INTERPRETED:
    DEVICES = ["cpu"]
else:
    DEVICES = ["cuda"] if torch.cuda.is_available() else []
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SMALL = dict(block_q=16, block_c=32, block_k=16, num_warps=4, num_stages=2)  # many tiles, every mask
FLAT = dict(SMALL, loop="flat")  # the same tiles, walked as one (tile, d-chunk) loop
TOL = 2e-5  # fp32 accumulation over d <= 1000 of inputs that are exact in the reference


def test_under_interpreter():
    if INTERPRETED:
        pytest.skip("this process is the interpreted run")
    if torch.cuda.is_available():
        # The compiled CUDA checks cover the kernels here; and the GPU image's Triton 3.6
        # interpreter fails on numpy >= 2.4 (a 1-element array where it wants a scalar).
        pytest.skip("a CUDA device is present: the same checks run compiled on it")
    env = dict(os.environ, TRITON_INTERPRET="1")  # PYTHONPATH: this checkout (conftest)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, "interpreted kernel checks failed:\n" + report
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) > 0, "interpreted run ran no checks:\n" + report


def _rand(shape, dtype, device, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)


# ---------------------------------------------------------------------------- pair_cosine

PAIR_SHAPES = [(1, 1, None), (37, 7, None), (67, 384, None), (33, 1000, None), (45, 7, (8, 32)), (29, 130, (4, 64))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,d,blocks", PAIR_SHAPES)
def test_pair_cosine(device, dtype, n, d, blocks):
    gen = torch.Generator().manual_seed(n * 1009 + d)
    wide = _rand((n, d + 5), dtype, device, gen)
    a = wide[:, :d]  # strided rows: the row stride is d + 5
    b = _rand((n, d), dtype, device, gen, scale=30.0)
    if n > 3:
        a[1] = 0  # zero a
        b[2] = 0  # zero b
        a[3] = 0
        b[3] = 0  # both zero
    out = torch.full((n,), float("nan"), device=device)  # poisoned: every element must be written
    block_n, block_d = blocks or (None, None)
    got = pc.pair_cosine(a, b, out=out, block_n=block_n, block_d=block_d)
    ref = reference.pair_cosine_reference(a.cpu(), b.cpu())
    assert got.dtype == torch.float32 and got.shape == (n,)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.cpu(), ref, atol=TOL, rtol=0)
    if n > 3:
        assert (got[1:4].cpu() == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [1e-15, 1e15])
def test_pair_cosine_and_topk_are_free_of_the_rows_scale(device, scale):
    """Norms far from 1 (fp32): each norm is taken on its own; sqrt(|a|^2 |b|^2) leaves fp32's range,
    to 0 or to inf, long before either square does."""
    gen = torch.Generator().manual_seed(4)
    a, b = _rand((37, 130), torch.float64, "cpu", gen), _rand((37, 130), torch.float64, "cpu", gen)
    far_a, far_b = (a * scale).float().to(device), (b * scale).float().to(device)
    got = pc.pair_cosine(far_a, far_b, block_n=16, block_d=64)
    torch.testing.assert_close(got.cpu(), reference.pair_cosine_reference(a, b), atol=TOL, rtol=0)
    scores, _ = ct.cosine_topk(far_a, far_b, 5, config=SMALL, splits=2)
    torch.testing.assert_close(scores.cpu().double(), reference.cosine_topk_reference(a, b, 5, False, 0)[0],
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,d", [(50, 7), (23, 384)])
def test_pair_cosine_indexed(device, dtype, rows, d):
    gen = torch.Generator().manual_seed(rows + d)
    table = _rand((rows, d), dtype, device, gen)
    table[5] = 0
    idx = torch.randint(0, rows, (203, 2), generator=gen, dtype=torch.int32)
    idx[:7, 1] = idx[:7, 0]  # a row with itself: cosine 1 (or 0 for the zero row)
    idx[7] = torch.tensor([5, 0])  # the zero row
    out = torch.full((203,), float("nan"), device=device)
    got = pc.pair_cosine_indexed(table, idx.to(device), out=out, block_n=16)
    ref = reference.pair_cosine_indexed_reference(table.cpu(), idx)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.cpu(), ref, atol=TOL, rtol=0)
    assert got[7].item() == 0
    with pytest.raises(IndexError):
        pc.pair_cosine_indexed(table, torch.tensor([[0, rows]], dtype=torch.int32, device=device))


# ---------------------------------------------------------------------------- cosine_topk

def assert_topk_matches(scores, ids, queries, corpus, k, first, tol=TOL):
    """The kernel's top-k against the float64 reference; first: None, or the first query's own
    corpus row (exclude_self).

    Scores must match position by position within tol; each returned id's true score must be
    its reported score; ids must equal the reference wherever the reference score at that
    rank is more than 2·tol away from its neighbours in the full ranking (elsewhere the
    ranking is a near tie that rounding may decide); equal returned scores come lower id first.
    """
    n_q, n_c = queries.shape[0], corpus.shape[0]
    assert scores.shape == (n_q, k) and ids.shape == (n_q, k)
    assert scores.dtype == torch.float32 and ids.dtype == torch.int64
    s, i = scores.cpu().double(), ids.cpu()
    assert not torch.isnan(s).any()
    ref_s, ref_i = reference.cosine_topk_reference(queries.cpu(), corpus.cpu(), k, first is not None, first or 0)
    pad = ref_i == -1
    assert torch.equal(i == -1, pad), "padding in the wrong places"
    assert (s[pad] == float("-inf")).all()
    real = ~pad
    assert (s[real] - ref_s[real]).abs().max().item() <= tol if real.any() else True
    full = reference.cosine_matrix_reference(queries, corpus)
    if first is not None:
        own = torch.arange(first, first + n_q)
        inside = own < n_c
        full[torch.arange(n_q)[inside], own[inside]] = float("-inf")
        assert not (i == own[:, None]).any(), "exclude_self returned the query itself"
    true = full.gather(1, i.clamp_min(0))
    assert ((true - s)[real].abs() <= tol).all(), "a returned score is not its id's cosine"
    for row in i:
        got = row[row >= 0]
        assert got.unique().numel() == got.numel(), "an id returned twice"
    # Order: descending, equal scores by ascending id.
    s32 = scores.cpu()
    later = s32[:, 1:][real[:, 1:]]
    assert (s32[:, :-1][real[:, 1:]] >= later).all(), "scores not sorted descending"
    same = (s32[:, :-1] == s32[:, 1:]) & real[:, 1:]
    assert (i[:, :-1][same] < i[:, 1:][same]).all(), "equal scores not in ascending id order"
    # Ids exact wherever the reference ranking is not a near tie.
    ranked = torch.sort(full, dim=1, descending=True).values
    inf = torch.full((n_q, 1), float("inf"), dtype=torch.float64)
    gaps = torch.cat([inf, ranked[:, :-1] - ranked[:, 1:], inf], dim=1)  # gaps[:, j] = ranked[j-1] - ranked[j]
    kk = min(k, n_c)
    clear = (gaps[:, :kk] > 2 * tol) & (gaps[:, 1:kk + 1] > 2 * tol) & real[:, :kk]
    assert torch.equal(i[:, :kk][clear], ref_i[:, :kk][clear]), "ids differ where scores are not tied"


TOPK_CASES = [
    # dtype, Q, C, d, k, first (exclude_self: the first query's own corpus row; None: no exclusion),
    # config, splits, fp32_precision
    (torch.float32, 37, 300, 7, 10, None, SMALL, 3, "ieee"),
    (torch.float32, 37, 300, 1000, 10, 0, None, None, "ieee"),
    (torch.float32, 21, 150, 1, 4, None, SMALL, 2, "ieee"),
    (torch.float32, 19, 130, 64, 5, 111, SMALL, 2, "tf32x3"),  # the corpus' last rows
    (torch.float16, 37, 300, 384, 10, None, None, None, "ieee"),
    (torch.float16, 29, 170, 7, 1, 50, SMALL, 3, "ieee"),
    (torch.bfloat16, 37, 300, 384, 10, 0, None, None, "ieee"),
    (torch.bfloat16, 29, 170, 130, 3, None, SMALL, 2, "ieee"),
    (torch.float32, 9, 40, 7, 50, 35, SMALL, 2, "ieee"),  # k > C; the last queries have no own row
    (torch.float16, 9, 40, 7, 41, None, None, None, "ieee"),  # k > C
    (torch.float32, 24, 200, 16, 100, None, None, 2, "ieee"),  # large k: K_PAD 128
    (torch.float32, 37, 300, 7, 10, 150, FLAT, 3, "ieee"),
    (torch.float16, 29, 170, 130, 3, None, FLAT, 2, "ieee"),  # d not a multiple of BLOCK_K
    (torch.bfloat16, 37, 300, 384, 10, 263, dict(FLAT, block_q=32, block_c=64, block_k=64), None, "ieee"),
    (torch.float32, 9, 40, 7, 50, None, FLAT, 2, "ieee"),  # k > C
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,n_q,n_c,d,k,first,config,splits,precision", TOPK_CASES,
                         ids=[f"{str(c[0])[6:]}-Q{c[1]}-C{c[2]}-d{c[3]}-k{c[4]}{'' if c[5] is None else f'-xself{c[5]}'}"
                              f"{'-' + c[6].get('loop', 'small') if c[6] else ''}-{c[8]}" for c in TOPK_CASES])
def test_cosine_topk_random(device, dtype, n_q, n_c, d, k, first, config, splits, precision):
    gen = torch.Generator().manual_seed(n_q * 7 + n_c * 13 + d * 17 + k)
    corpus = _rand((n_c, d), dtype, device, gen)
    queries = _rand((n_q, d), dtype, device, gen)
    own = first or 0  # near copies of their own rows, which exclude_self must then pass over
    queries[: n_q // 3] = corpus[own: own + n_q // 3] + 0.3 * _rand((n_q // 3, d), dtype, device, gen)
    corpus[n_c // 2] = 0  # a zero corpus row scores 0
    queries[-1] = 0  # a zero query: every score 0, ids in order
    tol = 5e-5 if precision == "tf32x3" else TOL
    scores, ids = ct.cosine_topk(queries, corpus, k, first is not None, own, config=config, splits=splits,
                                 fp32_precision=precision)
    assert_topk_matches(scores, ids, queries, corpus, k, first, tol)
    expected = [j for j in range(n_c) if not (first is not None and j == first + n_q - 1)][:k]
    assert ids[-1, :len(expected)].tolist() == expected and (scores[-1, :len(expected)] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k,first,splits", [(1, None, 1), (7, 0, 3), (4, 50, 2), (25, None, 4)])
@pytest.mark.parametrize("config", [SMALL, FLAT], ids=["tiles", "flat"])
def test_cosine_topk_exact_ties(device, dtype, k, first, splits, config):
    """Duplicated corpus rows tie exactly (small integers: every product and sum is exact in
    any order), so the whole answer, ids included, must equal the reference: lower id first,
    also across tiles and splits and at the k-th place."""
    gen = torch.Generator().manual_seed(k)
    distinct = torch.randint(-3, 4, (6, 8), generator=gen).double()
    distinct[0] = 0  # a zero corpus vector among them
    corpus = distinct[torch.randint(0, 6, (70,), generator=gen)]
    queries = torch.randint(-3, 4, (13, 8), generator=gen).double()
    queries[2] = 0
    queries[3] = corpus[(first or 0) + 3]  # its own row, under exclude_self
    queries, corpus = queries.to(dtype).to(device), corpus.to(dtype).to(device)
    scores, ids = ct.cosine_topk(queries, corpus, k, first is not None, first or 0, config=config, splits=splits)
    ref_s, ref_i = reference.cosine_topk_reference(queries.cpu(), corpus.cpu(), k, first is not None, first or 0)
    assert torch.equal(ids.cpu(), ref_i)
    torch.testing.assert_close(scores.cpu().double(), ref_s, atol=1e-6, rtol=0)
    assert_topk_matches(scores, ids, queries, corpus, k, first)


@pytest.mark.parametrize("device", DEVICES)
def test_cosine_topk_edges(device):
    q = torch.randn(4, 5, device=device)
    s, i = ct.cosine_topk(q, q[:0], 3)  # empty corpus: all padding
    assert s.shape == (4, 3) and (s == float("-inf")).all() and (i == -1).all()
    s, i = ct.cosine_topk(q[:0], q, 3)
    assert s.shape == (0, 3) and i.shape == (0, 3)
    s, i = ct.cosine_topk(q, q, 0)
    assert s.shape == (4, 0)
    s, i = ct.cosine_topk(q, q, 1)  # a query against itself
    assert i[:, 0].tolist() == [0, 1, 2, 3]
    s, i = ct.cosine_topk(q[:1], q[:1], 2, exclude_self=True)  # nothing left but padding
    assert i.tolist() == [[-1, -1]] and (s == float("-inf")).all()


# ---------------------------------------------------------------------------- through transenc.ops (GPU)

@pytest.mark.parametrize("device", [d for d in DEVICES if d == "cuda"])
def test_ops_door_uses_kernels(device, monkeypatch):
    from transenc import ops
    from transenc.kernels import pair_cosine as pc

    called = []  # each op's CUDA tensors reach its Triton kernel
    for module, name in ((pc, "pair_cosine"), (pc, "pair_cosine_indexed"), (ct, "cosine_topk")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **kw: called.append(_name) or _real(*a, **kw))
    gen = torch.Generator().manual_seed(3)
    a, b = _rand((1000, 384), torch.float16, device, gen), _rand((1000, 384), torch.float16, device, gen)
    torch.testing.assert_close(ops.pair_cosine(a, b).cpu(), reference.pair_cosine_reference(a.cpu(), b.cpu()),
                               atol=TOL, rtol=0)
    idx = torch.randint(0, 1000, (500, 2), generator=gen, dtype=torch.int32)
    torch.testing.assert_close(ops.pair_cosine_indexed(a, idx.to(device)).cpu(),
                               reference.pair_cosine_indexed_reference(a.cpu(), idx), atol=TOL, rtol=0)
    scores, ids = ops.cosine_topk(a[:100], b, 10)
    assert_topk_matches(scores, ids, a[:100], b, 10, None)  # no exclude_self: None, where False meant first id 0
    assert called == ["pair_cosine", "pair_cosine_indexed", "cosine_topk"]
