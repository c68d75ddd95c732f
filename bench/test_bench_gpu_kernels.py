"""The Triton kernels on one GPU beside what a user would otherwise run (the anchors of ../shared/DESIGN.md);
fills bench/results/gpu-kernels-<card>.md.

    python -m pytest bench/test_bench_gpu_kernels.py -q -s --bench-device cuda   # bench/gpu_check.sh, stage bench
    TRITON_INTERPRET=1 python -m pytest bench/test_bench_gpu_kernels.py -q -s   # dry run: tiny sizes on the CPU
"""
import os
from functools import partial

import pytest
import torch
import torch.nn.functional as F

import workloads as w
from source_tree import use_source_tree  # (tests/ is on the path: workloads puts it there)

use_source_tree()  # transenc.kernels from this tree's kernels/, whatever is installed
from transenc.kernels import cosine_topk as ct, pair_cosine as pc  # noqa: E402

pytest.importorskip("pytest_benchmark")
FULL = dict(device="cuda", pair_n=10_000_000, d=384, gather_rows=1_000_000, corpus=1_000_000, queries=20_000, k=10,
            chunk=4096, exact_sample=256, rounds=10)
DRY = dict(device="cpu", pair_n=300, d=24, gather_rows=50, corpus=500, queries=40, k=5, chunk=16, exact_sample=8, rounds=2)
# Beside the launch tables (kernels/*.py MEASURED, on an H200 at d = 384: pair fp32 16 rows at 4 warps, top-k 64 x 256
# x 64 tiles, 8 warps, 3 stages, the tile loop; elsewhere the defaults: 32 rows at 8 warps, 128 x 128 x 64 tiles); what
# lost on the H200 of 2026-11-28 is no longer swept (512-wide pair blocks, 16 splits, 64 x 64, 64 x 128, 128 x 128 x 128
# tiles). "flat": one (tile, d-chunk) loop, the next tile's loads in flight during a merge; "splits": merge restarts
# against a last wave's idle SMs (the launcher's choice: 2 there).
PAIR_SWEEP = [dict(block_n=32, num_warps=8), dict(block_n=64, num_warps=8)]
TOPK_SWEEP = [dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, splits=1),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, loop="flat"),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, loop="flat", splits=1),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=4, loop="flat"),
              dict(block_q=128, block_c=128, block_k=64, num_warps=8, num_stages=3, loop="flat"),
              dict(block_q=64, block_c=128, block_k=64, num_warps=4, num_stages=3, loop="flat")]
TORCH, LAUNCH = "torch F.cosine_similarity", "triton (launch table)"
TORCH_TOPK = "torch mm + topk float16, 4,096-query chunks (pre-normalised)"
FP16_LAUNCH = "triton float16 (launch table)"  # the top-k whose ids the others' are compared with

TITLE = "transenc Triton kernels"
HEADER = ["op", "implementation", "time ms", "rate", "peak extra MiB", "anchor ms / this",
          "ids = triton fp16's (same rank / found)", "note"]


def table_rows(measured: dict) -> list[list]:
    """measured: rows, (op, implementation) -> {ms, rate, peak, anchor, note}; ids, implementation -> top-k ids."""
    rows, ids = measured.get("rows", {}), {impl: found.cpu() for impl, found in measured.get("ids", {}).items()}
    table = []
    for (op, impl), row in rows.items():
        anchor, same = rows.get((op, row["anchor"])) if row["anchor"] != impl else None, ""
        if impl != FP16_LAUNCH and {impl, FP16_LAUNCH} <= ids.keys():  # same id at the same rank; fp16's ids found
            found, reference = ids[impl], ids[FP16_LAUNCH]
            same = f"{(found == reference).float().mean():.4f} / " \
                   f"{(found[:, :, None] == reference[:, None, :]).any(1).float().mean():.4f}"
        table.append([op, impl, f"{row['ms']:.2f}", row["rate"], "n/a" if row["peak"] is None else f"{row['peak']:,.0f}",
                      f"{anchor['ms'] / row['ms']:.1f}x" if anchor else "", same, row["note"]])
    return table


@pytest.fixture(scope="module")
def sizes(device, table):
    table.note("times: the median of the rounds after two warm-up calls, each call synchronised; peak memory: "
               "torch.cuda.max_memory_allocated above what was allocated before the call; top-k queries: a quarter are "
               "noisy copies of corpus rows; pair cosine GB/s: input bytes / time")
    if device == "cuda" and torch.cuda.is_available():
        table.note(f"sizes: {FULL}")
        return FULL
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        table.title += " (dry run: numbers meaningless)"
        return DRY
    pytest.skip("needs --bench-device cuda and a CUDA device (a dry run: --bench-device cpu, TRITON_INTERPRET=1)")


@pytest.fixture(scope="module")
def inputs():
    """inputs(group, make): one group's inputs at a time (10M pairs alone take 31 GB of the GPU)."""
    held = {}

    def inputs(group: str, make):
        if group not in held:
            held.clear()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            held[group] = make()
        return held[group]
    return inputs


@pytest.fixture
def measure(benchmark, table, sizes):
    """measure(op, implementation, fn, work, anchor, ...) -> fn's result, timed and kept as a row. work: bytes read,
    or FLOPs (unit="FLOP"); note: text, or a function of the ms; peak: measure the peak device memory fn (or the
    function given) allocates above what is allocated before it."""
    def measure(op, impl, fn, work, anchor, note="", peak=False, unit="B", rounds=None, warmup=2):
        result = benchmark.pedantic(lambda: (fn(), w.sync())[0], rounds=rounds or sizes["rounds"], iterations=1,
                                    warmup_rounds=warmup)
        ms, peak_mib = benchmark.stats.stats.median * 1e3, None
        if peak and sizes["device"] == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            (peak if callable(peak) else fn)()
            w.sync()
            peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
        table.measured.setdefault("rows", {})[(op, impl)] = dict(
            ms=ms, anchor=anchor, note=note(ms) if callable(note) else note, peak=peak_mib,
            rate=f"{work / ms / 1e9:,.1f} TFLOP/s" if unit == "FLOP" else f"{work / ms / 1e6:,.0f} GB/s")
        return result
    return measure


@pytest.mark.parametrize("what", ["device copy", "bf16 matmul"])
def test_ceiling(measure, sizes, what):
    if sizes["device"] != "cuda":
        pytest.skip("a GPU's ceilings")
    if what == "device copy":
        x, y = torch.randn(2**29, device="cuda"), torch.empty(2**29, device="cuda")
        measure("ceiling", "device copy, 2 GiB read + 2 GiB written", lambda: y.copy_(x), 2 * x.numel() * 4, None)
    else:
        a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        measure("ceiling", "bf16 matmul 8192^3, random data", lambda: a @ b, 2 * 8192**3, None, unit="FLOP")


PAIR = {TORCH: lambda a, b: F.cosine_similarity(a, b, dim=1), LAUNCH: pc.pair_cosine, f"{LAUNCH}, timed again": pc.pair_cosine,
        **{f"triton {cfg}": partial(pc.pair_cosine, **cfg) for cfg in PAIR_SWEEP}}
PAIR_RUNS = [(torch.float32, impl) for impl in PAIR] + [(dtype, impl) for dtype in (torch.float16, torch.bfloat16)
                                                         for impl in (LAUNCH, TORCH)]


@pytest.mark.parametrize("dtype, impl", PAIR_RUNS, ids=[f"{str(d)[6:]}-{i}" for d, i in PAIR_RUNS])
def test_pair_cosine(measure, inputs, sizes, dtype, impl):
    def pairs():
        gen = torch.Generator(device=sizes["device"]).manual_seed(0)
        a, b = (torch.randn(sizes["pair_n"], sizes["d"], device=sizes["device"], generator=gen) for _ in range(2))
        a[0] = 0  # one zero row: its cosine must be 0, not NaN
        return a.to(dtype), b.to(dtype)

    a, b = inputs(f"pair {dtype}", pairs)
    nbytes, note = 2 * a.numel() * a.element_size(), {f"{LAUNCH}, timed again": "run-to-run spread"}.get(impl, "")
    if impl == LAUNCH and dtype == torch.float32:
        torch.testing.assert_close(pc.pair_cosine(a, b), F.cosine_similarity(a, b, dim=1), atol=1e-6, rtol=0)
        note = lambda ms: f"target >= 3,200 GB/s: {'met' if nbytes / ms / 1e6 >= 3200 else 'MISSED'}"  # noqa: E731
    measure(f"pair_cosine {str(dtype)[6:]}", impl, lambda: PAIR[impl](a, b), nbytes, TORCH,
            "sweep" if impl.startswith("triton {") else note, peak=dtype == torch.float32 and impl in (TORCH, LAUNCH))


FUSED, TORCH_GATHER = "triton, gather fused (no bounds check)", "torch gather + F.cosine_similarity"
INDEXED = {FUSED: lambda t, i, i64: pc.pair_cosine_indexed(t, i, check_bounds=False),  # the bounds check costs ~1%
           TORCH_GATHER: lambda t, i, i64: F.cosine_similarity(t[i64[:, 0]], t[i64[:, 1]], dim=1)}


@pytest.mark.parametrize("impl", INDEXED)
def test_pair_cosine_indexed(measure, inputs, sizes, impl):
    def table_and_ids():  # pairs of row ids over a table of rows: int32 for ours, int64 for torch's gather
        gen = torch.Generator(device=sizes["device"]).manual_seed(2)
        rows = torch.randn(sizes["gather_rows"], sizes["d"], device=sizes["device"], generator=gen)
        idx = torch.randint(0, len(rows), (sizes["pair_n"], 2), device=sizes["device"], generator=gen, dtype=torch.int32)
        return rows, idx, idx.long()

    rows, idx, idx64 = inputs("pair indexed", table_and_ids)
    measure("pair_cosine_indexed fp32", impl, lambda: INDEXED[impl](rows, idx, idx64),
            idx.numel() * (sizes["d"] + 1) * 4, TORCH_GATHER, peak=True)  # the rows gathered and their ids


def topk_inputs(sizes: dict, dtype):
    """Queries and corpus in `dtype`, the queries checked exactly, and the float64 top-(k+1) of those."""
    device, d, n_q = sizes["device"], sizes["d"], sizes["queries"]
    gen = torch.Generator(device=device).manual_seed(1)
    corpus = torch.randn(sizes["corpus"], d, device=device, generator=gen)
    queries = torch.randn(n_q, d, device=device, generator=gen)
    pick = torch.randint(0, sizes["corpus"], (n_q // 4,), device=device, generator=gen)
    queries[:n_q // 4] = corpus[pick] + 0.5 * torch.randn(n_q // 4, d, device=device, generator=gen)
    sample = torch.randperm(n_q, device=device, generator=gen)[:sizes["exact_sample"]]
    queries, corpus = queries.to(dtype), corpus.to(dtype)
    cosines = F.normalize(queries[sample].double(), dim=1) @ F.normalize(corpus.double(), dim=1).T
    return queries, corpus, sample, torch.topk(cosines, sizes["k"] + 1, dim=1)


def exact_check(found, sample, exact, tol: float = 2e-5) -> str:
    """Against float64 on the sampled queries: ids that differ at ranks with no near-tie, the largest score error."""
    (scores, ids), k = found, found[1].shape[1]
    error = (scores[sample].double() - exact.values[:, :k]).abs().max().item()
    gap_above = torch.cat([torch.full_like(exact.values[:, :1], float("inf")), -exact.values.diff(dim=1)], dim=1)
    clear = (gap_above[:, :k] > 2 * tol) & (gap_above[:, 1:] > 2 * tol)
    bad = int(((ids[sample] != exact.indices[:, :k]) & clear).sum())
    return f"exact: {bad} bad / {int(clear.sum())}, max err {error:.1e}"


def topk_row(measure, table, impl: str, run, queries, corpus, note, **timing) -> None:
    """A cosine_topk row: the FLOPs of the whole score matrix, torch's chunked top-k as the anchor; keeps the ids."""
    found = measure("cosine_topk", impl, run, 2 * len(queries) * len(corpus) * corpus.shape[1], TORCH_TOPK, note,
                    unit="FLOP", **timing)
    table.measured.setdefault("ids", {})[impl] = found[1] if isinstance(found, tuple) else found


TOPK = [(torch.float16, LAUNCH), (torch.float16, "again"), *[(torch.float16, cfg) for cfg in TOPK_SWEEP],
        (torch.bfloat16, LAUNCH)]


@pytest.mark.parametrize("dtype, config", TOPK, ids=[f"{str(d)[6:]}-{c}" for d, c in TOPK])
def test_topk(measure, inputs, table, sizes, dtype, config):
    queries, corpus, sample, exact = inputs(f"topk {dtype}", lambda: topk_inputs(sizes, dtype))
    name, run = str(dtype)[6:], partial(ct.cosine_topk, queries, corpus, sizes["k"])
    if isinstance(config, dict):
        tiles = {key: v for key, v in config.items() if key != "splits"}
        impl, run = f"triton {name} {config}", partial(run, config=tiles, splits=config.get("splits"))
    else:
        impl = f"triton {name} (launch table)" + ", timed again" * (config == "again")
    checked, rounds = exact_check(run(), sample, exact), max(2, sizes["rounds"] // 2)
    if config == LAUNCH:
        note, rounds = lambda ms: checked + f"; target <= 45 ms: {'met' if ms <= 45 else 'MISSED'}", None
    else:
        note = f"sweep; {checked}" if isinstance(config, dict) else "run-to-run spread"
    topk_row(measure, table, impl, run, queries, corpus, note, peak=config == LAUNCH, rounds=rounds)


def test_topk_torch(measure, inputs, table, sizes):
    def normalised_fp16():
        queries, corpus, _, _ = topk_inputs(sizes, torch.float32)
        return F.normalize(queries, dim=1).half(), F.normalize(corpus, dim=1).half()

    queries, corpus = inputs("topk torch", normalised_fp16)
    topk_row(measure, table, TORCH_TOPK, lambda: w.topk_torch(queries, corpus, sizes["k"], sizes["chunk"]), queries,
             corpus, "torch's fp16 scores are rounded to fp16, so ties", peak=True, rounds=max(2, sizes["rounds"] // 2))


@pytest.mark.parametrize("precision", ["ieee", "tf32x3"])
def test_topk_fp32(measure, inputs, table, sizes, precision):
    queries, corpus, sample, exact = inputs("topk fp32", lambda: topk_inputs(sizes, torch.float32))
    run = partial(ct.cosine_topk, queries, corpus, sizes["k"], fp32_precision=precision)
    note = exact_check(run(), sample, exact, tol=5e-5 if precision == "tf32x3" else 2e-5)
    topk_row(measure, table, f"triton float32, fp32_precision={precision}", run, queries, corpus, note, rounds=3, warmup=1)


def test_topk_semantic_search(measure, inputs, table, sizes):
    pytest.importorskip("sentence_transformers")
    queries, corpus, _, _ = inputs("topk fp32", lambda: topk_inputs(sizes, torch.float32))
    impl, k = "sentence_transformers.util.semantic_search float32", sizes["k"]
    w.topk_semantic_search(queries[:256], corpus, k)  # warm-up
    topk_row(measure, table, impl, lambda: w.topk_semantic_search(queries, corpus, k), queries, corpus,
             "one timed run; peak from a quarter of the queries", rounds=1, warmup=0,
             peak=lambda: w.topk_semantic_search(queries[:len(queries) // 4], corpus, k))
