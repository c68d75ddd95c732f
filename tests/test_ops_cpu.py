"""The C++ engine against the float64 torch references, on awkward shapes and inputs."""
import numpy as np
import pytest
import torch

from transenc import _C, ops, reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
pytestmark = pytest.mark.usefixtures("engine_variant")  # every check, on every variant this CPU runs


def rand(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen).to(dtype)


# ---- pair cosine -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 1000, 4099])
@pytest.mark.parametrize("d", [1, 7, 384, 768, 1000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_cosine_matches_reference(n, d, dtype):
    gen = torch.Generator().manual_seed(n * 7919 + d)
    a, b = rand(gen, n, d, dtype=dtype), rand(gen, n, d, dtype=dtype)
    got = ops.pair_cosine(a, b)
    assert got.dtype == torch.float32 and got.shape == (n,)
    torch.testing.assert_close(got, reference.pair_cosine_reference(a, b), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_cosine_zero_rows_give_zero(dtype):
    gen = torch.Generator().manual_seed(1)
    a, b = rand(gen, 40, 33, dtype=dtype), rand(gen, 40, 33, dtype=dtype)
    a[3] = 0
    b[7] = 0
    a[11] = b[11] = 0
    got = ops.pair_cosine(a, b)
    assert not torch.isnan(got).any()
    assert got[[3, 7, 11]].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("scale", [1e-15, 1e15])
def test_pair_cosine_is_free_of_the_rows_scale(scale):
    """Norms far from 1: each norm is taken on its own (|a| |b|, not sqrt(|a|^2 |b|^2), whose product
    leaves fp32's range, to 0 or to inf, long before either square does)."""
    gen = torch.Generator().manual_seed(3)
    a, b = rand(gen, 50, 384).double(), rand(gen, 50, 384).double()
    got = ops.pair_cosine((a * scale).float(), (b * scale).float())
    torch.testing.assert_close(got, reference.pair_cosine_reference(a, b), atol=1e-5, rtol=0)


def test_pair_cosine_odd_inputs():
    gen = torch.Generator().manual_seed(2)
    a, b = rand(gen, 300, 64), rand(gen, 64, 300).T  # b is not contiguous
    torch.testing.assert_close(ops.pair_cosine(a, b), reference.pair_cosine_reference(a, b), atol=1e-5, rtol=0)
    a16, bbf = a.half(), b.bfloat16()  # mixed dtypes promote to fp32
    torch.testing.assert_close(ops.pair_cosine(a16, bbf), reference.pair_cosine_reference(a16, bbf), atol=1e-5, rtol=0)
    a64 = a.double().requires_grad_()
    torch.testing.assert_close(ops.pair_cosine(a64, a64), torch.ones(300), atol=1e-5, rtol=0)
    assert ops.pair_cosine(torch.empty(0, 5), torch.empty(0, 5)).shape == (0,)
    with pytest.raises(ValueError):
        ops.pair_cosine(a, b[:10])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,n,d", [(1, 3, 7), (50, 1000, 384), (4099, 4099, 1000)])
def test_pair_cosine_indexed_matches_reference(dtype, rows, n, d):
    gen = torch.Generator().manual_seed(rows + n + d)
    table = rand(gen, rows, d, dtype=dtype)
    idx = torch.randint(0, rows, (n, 2), generator=gen, dtype=torch.int32)
    got = ops.pair_cosine_indexed(table, idx)
    torch.testing.assert_close(got, reference.pair_cosine_indexed_reference(table, idx), atol=1e-5, rtol=0)
    # the same through numpy int64 indices
    torch.testing.assert_close(ops.pair_cosine_indexed(table, idx.long().numpy()), got, atol=0, rtol=0)


def test_pair_cosine_indexed_rejects_out_of_range():
    table = torch.randn(10, 4)
    for bad in ([[0, 10]], [[-1, 2]], [[0, 2**32 + 1]]):
        with pytest.raises(ValueError):
            ops.pair_cosine_indexed(table, torch.tensor(bad))
    with pytest.raises(ValueError):  # the engine checks too, not only the Python door
        _C.pair_cosine_indexed(table.numpy(), "f32", np.array([[0, 10]], dtype=np.int32))
    with pytest.raises(ValueError):
        ops.pair_cosine_indexed(table, torch.tensor([0, 1]))


# ---- cosine top-k ----------------------------------------------------------------------


def assert_topk_matches(queries, corpus, k, exclude_self=False, first_query_id=0):
    """Scores to 1e-5 everywhere; ids wherever the reference score is not within 1e-6 of a
    neighbour (in fp32 such near-ties may legitimately swap)."""
    scores, ids = ops.cosine_topk(queries, corpus, k, exclude_self, first_query_id)
    assert scores.dtype == torch.float32 and ids.dtype == torch.int64
    assert scores.shape == ids.shape == (queries.shape[0], k)
    ref_scores, ref_ids = reference.cosine_topk_reference(queries, corpus, k + 1, exclude_self, first_query_id)
    finite = torch.isfinite(ref_scores[:, :k])
    assert torch.equal(torch.isfinite(scores), finite)
    assert torch.equal(ids[~finite], torch.full_like(ids[~finite], -1))
    torch.testing.assert_close(scores[finite].double(), ref_scores[:, :k][finite], atol=1e-5, rtol=0)
    padded = torch.cat([ref_scores.new_full((ref_scores.shape[0], 1), float("inf")), ref_scores], 1)
    gap_before = padded[:, :k] - ref_scores[:, :k]
    gap_after = ref_scores[:, :k] - padded[:, 2:]
    clear = finite & (gap_before > 1e-6) & (gap_after > 1e-6)
    assert torch.equal(ids[clear], ref_ids[:, :k][clear])
    # sorted descending, and the ids of each row distinct
    assert (scores[:, 1:][finite[:, 1:]] <= scores[:, :-1][finite[:, 1:]]).all()
    for row in ids.tolist():
        kept = [i for i in row if i >= 0]
        assert len(kept) == len(set(kept))
    return scores, ids, clear.sum() / max(int(finite.sum()), 1)


@pytest.mark.parametrize(
    "q,c,d,k",
    [
        (1, 1, 1, 1),
        (1, 3, 7, 10),  # k > C
        (3, 1000, 768, 100),
        (1000, 3, 384, 10),  # k > C
        (1, 4099, 1000, 10),  # one query: threads split the corpus
        (37, 4099, 7, 100),
        (1000, 1000, 384, 1),
        (4099, 1000, 384, 10),  # threads split the queries, several chunks each
        (3000, 1500, 384, 5),  # threads split the corpus, two query chunks each
        (100, 4099, 384, 4100),  # k > C on a corpus of several blocks
    ],
)
def test_cosine_topk_matches_reference(q, c, d, k):
    gen = torch.Generator().manual_seed(q * 31 + c * 7 + d + k)
    _, _, clear = assert_topk_matches(rand(gen, q, d), rand(gen, c, d), k)
    if d > 1:  # (with d = 1 every cosine is +-1: all ties)
        assert clear > 0.5  # ids are compared, not only near-ties


def test_cosine_topk_random_shapes():
    gen = torch.Generator().manual_seed(1234)
    for _ in range(25):
        q, c = (int(x) for x in torch.randint(1, 700, (2,), generator=gen))
        d = int(torch.randint(1, 130, (1,), generator=gen))
        k = int(torch.randint(1, c + 20, (1,), generator=gen))
        first = int(torch.randint(0, c, (1,), generator=gen)) if q % 2 else 0
        assert_topk_matches(rand(gen, q, d), rand(gen, c, d), k, exclude_self=bool(q % 2), first_query_id=first)


@pytest.mark.parametrize("q,c,k,first", [
    (1, 1, 1, 0), (3, 3, 5, 0), (1000, 1000, 10, 0), (700, 4099, 100, 0), (4099, 1000, 1, 0),
    (5, 40, 3, 35),  # the corpus' last rows
    (333, 4099, 10, 1777), (37, 1003, 1003, 500),  # a block from the middle; k > C
    (100, 1000, 7, 950),  # the block runs past the corpus end: its last queries have no own row
])
def test_cosine_topk_exclude_self(q, c, k, first):
    gen = torch.Generator().manual_seed(q + c + k + first)
    corpus = rand(gen, c, 48)
    queries = torch.cat([corpus[first:first + q], rand(gen, max(0, first + q - c), 48)])
    scores, ids, _ = assert_topk_matches(queries, corpus, k, exclude_self=True, first_query_id=first)
    own = torch.arange(first, first + q).unsqueeze(1)
    assert not (ids == own).any()
    if q <= c - first and k < c:  # a query's own row would be its first neighbour
        assert (scores[:, 0] < 1 - 1e-6).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("q,c,d,k", [(5, 1000, 384, 10), (300, 4099, 768, 100)])
def test_cosine_topk_half_inputs(dtype, q, c, d, k):
    gen = torch.Generator().manual_seed(q + c + d)
    assert_topk_matches(rand(gen, q, d, dtype=dtype), rand(gen, c, d, dtype=dtype), k)


def test_cosine_topk_mixed_dtypes():
    gen = torch.Generator().manual_seed(9)
    assert_topk_matches(rand(gen, 70, 96, dtype=torch.bfloat16), rand(gen, 900, 96, dtype=torch.float16), 10)
    assert_topk_matches(rand(gen, 70, 96).double(), rand(gen, 900, 96), 10)


@pytest.mark.parametrize("q", [1, 100])
def test_cosine_topk_ties_go_to_the_lower_id(q):
    gen = torch.Generator().manual_seed(q)
    distinct = rand(gen, 40, 384)
    corpus = distinct[torch.randint(0, 40, (3000,), generator=gen)]  # every row repeated
    queries = rand(gen, q, 384)
    scores, ids = ops.cosine_topk(queries, corpus, 100)
    ref_scores, ref_ids = reference.cosine_topk_reference(queries, corpus, 100)
    assert torch.equal(ids, ref_ids)  # equal rows score bit-equal, so lower id first
    for s_row, i_row in zip(scores.tolist(), ids.tolist()):
        for j in range(1, len(s_row)):
            assert s_row[j] < s_row[j - 1] or (s_row[j] == s_row[j - 1] and i_row[j] > i_row[j - 1])


@pytest.mark.parametrize("scale", [1e-15, 1e15])
def test_cosine_topk_is_free_of_the_rows_scale(scale):
    gen = torch.Generator().manual_seed(5)
    q, c = rand(gen, 37, 130).double(), rand(gen, 300, 130).double()
    scores, _ = ops.cosine_topk((q * scale).float(), (c * scale).float(), 5)
    torch.testing.assert_close(scores.double(), reference.cosine_topk_reference(q, c, 5, False, 0)[0], atol=1e-5, rtol=0)


def test_cosine_topk_zero_rows():
    gen = torch.Generator().manual_seed(5)
    corpus, queries = rand(gen, 500, 64), rand(gen, 40, 64)
    corpus[[3, 100, 499]] = 0
    queries[[0, 39]] = 0
    scores, ids = ops.cosine_topk(queries, corpus, 20)
    assert not torch.isnan(scores).any()
    assert (scores[[0, 39]] == 0).all()  # a zero query ties everything at 0: lowest ids
    assert ids[0].tolist() == list(range(20))
    assert_topk_matches(queries, corpus, 20)
    # a zero corpus row scores 0 for every query
    full, all_ids = ops.cosine_topk(queries[1:5], corpus, 500)
    for row_s, row_i in zip(full.tolist(), all_ids.tolist()):
        assert all(row_s[row_i.index(z)] == 0 for z in (3, 100, 499))


def test_cosine_topk_edges():
    x = torch.randn(4, 8)
    s, i = ops.cosine_topk(x, x, 0)
    assert s.shape == i.shape == (4, 0)
    s, i = ops.cosine_topk(x, torch.empty(0, 8), 3)
    assert torch.isinf(s).all() and (i == -1).all()
    s, i = ops.cosine_topk(torch.empty(0, 8), x, 3)
    assert s.shape == (0, 3)
    s, i = ops.cosine_topk(x[:1], x[:1], 2, exclude_self=True)
    assert i.tolist() == [[-1, -1]] and torch.isinf(s).all()
    for bad in (-1, 1.5):
        with pytest.raises(ValueError):
            ops.cosine_topk(x, x, bad)
    with pytest.raises(ValueError):
        ops.cosine_topk(x, torch.randn(4, 9), 2)
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="first_query_id"):
            ops.cosine_topk(x[:2], x, 2, exclude_self=True, first_query_id=bad)
    with pytest.raises(ValueError, match="only applies with exclude_self"):
        ops.cosine_topk(x[:2], x, 2, first_query_id=2)


def test_cosine_topk_is_deterministic_and_symmetric():
    """Scores are one fixed FMA chain per pair: cos(i, j) == cos(j, i) bit for bit."""
    gen = torch.Generator().manual_seed(11)
    e = rand(gen, 600, 384)
    s1, i1 = ops.cosine_topk(e, e, 15, exclude_self=True)
    s2, i2 = ops.cosine_topk(e, e, 15, exclude_self=True)
    assert torch.equal(s1, s2) and torch.equal(i1, i2)
    score = {(q, j): s for q, (row_s, row_i) in enumerate(zip(s1.tolist(), i1.tolist())) for s, j in zip(row_s, row_i)}
    shared = [(a, b) for (a, b) in score if (b, a) in score]
    assert shared
    assert all(score[a, b] == score[b, a] for a, b in shared)


@pytest.mark.parametrize("q", [1, 300])  # one query: threads split the corpus; 300: the queries
def test_results_do_not_depend_on_the_thread_count(monkeypatch, q):
    gen = torch.Generator().manual_seed(q)
    queries, corpus = rand(gen, q, 200), rand(gen, 5000, 200)
    a, b = rand(gen, 10000, 200), rand(gen, 10000, 200)
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("TRANSENC_THREADS", threads)
        assert _C.threads() == int(threads)
        results.append((*ops.cosine_topk(queries, corpus, 50), ops.pair_cosine(a, b)))
    for x, y in zip(*results):
        assert torch.equal(x, y)
