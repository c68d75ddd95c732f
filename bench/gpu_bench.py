"""On one GPU, side by side with what a user would otherwise run: the Triton kernels (`kernels`), and
cross-encoder predict / bi-encoder encode against sentence-transformers (`models`).

Data, sizes and baselines (the DESIGN.md anchors):
  pair_cosine   10M pairs x 384, fp32 (and fp16/bf16; and the indexed form over a 1M x 384
                table) vs torch.nn.functional.cosine_similarity; effective GB/s = input bytes / time.
  cosine_topk   corpus 1M x 384, 20k queries, k = 10, fp16 and bf16 vs
                sentence_transformers.util.semantic_search (fp32) and torch chunked
                mm + topk (fp16, 4,096-query chunks, inputs normalised beforehand, untimed);
                torch.cuda.max_memory_allocated peaks above the inputs; id agreement with
                torch, and an exact check against float64 on 256 sampled queries.
Random normal data; a quarter of the queries are noisy copies of corpus rows. Timing: CUDA
events, warm-up first, median of the repetitions. Also measured: the device-copy bandwidth and
a bf16 8192^3 matmul, as ceilings for the same run. Results: gpu-kernels-<card>.md in --out.

models: predict and encode on .device-data/pairs.tsv (`workloads.py device-data`), MiniLM-L6-sized
and BERT-base-sized BERTs with random weights, against CrossEncoder.predict (batch 128) and
SentenceTransformer.encode (batch 32, its default), fp32 as they run by default; ours at precision
auto. One timed run each after a 2,048-row warm-up. Results: gpu-models-<card>.md in --out.

`--dry-run` runs every code path at tiny sizes on the CPU under TRITON_INTERPRET=1 (set here
before anything imports triton); its numbers mean nothing (and say so in the files' titles).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if "--dry-run" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from source_tree import use_source_tree  # noqa: E402

use_source_tree()
import workloads as w  # noqa: E402
from results_writer import write_table  # noqa: E402
from transenc.kernels import cosine_topk as ct  # noqa: E402
from transenc.kernels import pair_cosine as pc  # noqa: E402

FULL = dict(pair_n=10_000_000, d=384, table_rows=1_000_000, corpus=1_000_000, queries=20_000, k=10,
            chunk=4096, exact_sample=256, reps=10, st_warm=256)
DRY = dict(pair_n=300, d=24, table_rows=50, corpus=500, queries=40, k=5, chunk=16, exact_sample=8, reps=2, st_warm=4)
# Block shapes to try next to the default (32 x 128, 8 warps: 124 registers, 2 programs per SM
# in an sm_90a compile without a GPU); the 512-wide ones load a whole d <= 512 row at once.
PAIR_SWEEP = [dict(block_n=16, num_warps=4), dict(block_n=64, num_warps=8),
              dict(block_n=4, block_d=512, num_warps=4), dict(block_n=8, block_d=512, num_warps=8)]
# Tile configs to try next to the launch table's (64 x 256, 8 warps, the tile loop: 54.1 ms on the
# H200 of 2026-11-28, where 16 splits, 64 x 64 tiles and 128 x 128 x 128 lost by 10-24 ms). "flat"
# walks (tile, d-chunk) as one loop, so that the next tile's loads are in flight during a merge;
# an sm_90a compile without a GPU shows the difference: the tile loop drains and refills its
# cp.async pipeline at every tile, the flat loop only once (254 registers, no spills at 64 x 256).
# "splits" (corpus splits; None = the launcher's choice, 2 at 64-query blocks on an H200) is passed
# separately. Each split starts its running top-k empty, so more splits mean more merge steps (16
# splits cost 11 ms); one split leaves the last wave of programs a third full: splits=1 weighs the two.
TOPK_SWEEP = [dict(block_q=64, block_c=128, block_k=64, num_warps=4, num_stages=3),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, splits=1),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, loop="flat"),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=3, loop="flat", splits=1),
              dict(block_q=64, block_c=256, block_k=64, num_warps=8, num_stages=4, loop="flat"),
              dict(block_q=128, block_c=128, block_k=64, num_warps=8, num_stages=3, loop="flat"),
              dict(block_q=64, block_c=128, block_k=64, num_warps=4, num_stages=3, loop="flat")]
DRY_TOPK_SWEEP = [dict(block_q=16, block_c=32, block_k=16, num_warps=4, num_stages=2, splits=3),
                  dict(block_q=16, block_c=32, block_k=16, num_warps=4, num_stages=2, loop="flat")]


class Bench:
    def __init__(self, device: torch.device, reps: int):
        self.device, self.reps = device, reps
        self.cuda = device.type == "cuda"
        self.lines: list[str] = []

    def time_ms(self, fn, reps: int | None = None, warmup: int = 2) -> float:
        """Median milliseconds of fn() over reps runs, after warm-up."""
        reps = reps or self.reps
        for _ in range(warmup):
            fn()
        w.sync()
        times = []
        for _ in range(reps):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def peak_extra_mib(self, fn) -> float | None:
        """Peak device memory fn() allocates above what is allocated before it, in MiB."""
        if not self.cuda:
            return None
        w.sync()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        w.sync()
        return (torch.cuda.max_memory_allocated() - base) / 2**20

    def row(self, rows: list, op: str, impl: str, fn, work: float, peak: bool = False, note="", **timing) -> float:
        """Times fn (time_ms), appends (op, impl, ms, work, peak MiB or None, note) to rows; returns ms.
        work: bytes read (pair ops) or floating-point operations (top-k); note: text, or a function of ms."""
        ms = self.time_ms(fn, **timing)
        rows.append((op, impl, ms, work, self.peak_extra_mib(fn) if peak else None, note(ms) if callable(note) else note))
        return ms

    def say(self, line: str):
        """A finding: printed now, and one of the results file's notes."""
        print(line, flush=True)
        self.lines.append(line)


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def ceilings(b: Bench):
    if not b.cuda:
        return
    x = torch.empty(2 * 2**30 // 4, dtype=torch.float32, device=b.device).normal_()
    y = torch.empty_like(x)
    ms = b.time_ms(lambda: y.copy_(x), reps=10)
    copy_tbs = 2 * x.numel() * 4 / ms / 1e9
    del x, y
    a = torch.randn(8192, 8192, device=b.device, dtype=torch.bfloat16)
    c = torch.randn(8192, 8192, device=b.device, dtype=torch.bfloat16)
    ms_mm = b.time_ms(lambda: a @ c, reps=10)
    del a, c
    b.say(f"Ceilings measured in this run: device copy {copy_tbs:.2f} TB/s (2 GiB, read + write); "
          f"bf16 matmul 8192^3 {2 * 8192**3 / ms_mm / 1e9:.0f} TFLOP/s (random data).")


def bench_pair(b: Bench, sz: dict, rows: list):
    n, d, dev = sz["pair_n"], sz["d"], b.device
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, d, device=dev, generator=gen)
    c = torch.randn(n, d, device=dev, generator=gen)
    a[0] = 0  # one zero row
    in_bytes = 2 * n * d * 4

    ours = pc.pair_cosine(a, c)
    theirs = F.cosine_similarity(a, c, dim=1)
    check = min(n, 100_000)
    ref = pc.pair_cosine_reference(a[:check].cpu(), c[:check].cpu())
    err_ref = (ours[:check].cpu() - ref).abs().max().item()
    err_torch = (ours - theirs).abs().max().item()
    finite = bool(torch.isfinite(ours).all())
    b.say(f"pair_cosine fp32 {n:,} x {d}: max |ours - float64| (first {check:,} rows) {err_ref:.2e}, "
          f"max |ours - F.cosine_similarity| {err_torch:.2e}, all finite {finite}, zero row -> {ours[0].item()}")
    del theirs

    op = "pair_cosine fp32"
    t_torch = b.row(rows, op, "torch F.cosine_similarity", lambda: F.cosine_similarity(a, c, dim=1), in_bytes, peak=True)
    target = lambda ms: f"; target >= 3,200 GB/s: {'met' if in_bytes / ms / 1e6 >= 3200 else 'MISSED'}" if b.cuda else ""  # noqa: E731
    b.row(rows, op, "triton (launch table)", lambda: pc.pair_cosine(a, c), in_bytes, peak=True,
          note=lambda ms: f"{t_torch / ms:.1f}x torch{target(ms)}")
    b.row(rows, op, "triton (launch table), timed again", lambda: pc.pair_cosine(a, c), in_bytes, note="run-to-run spread")
    for cfg in PAIR_SWEEP:
        b.row(rows, op, f"triton {cfg}", lambda: pc.pair_cosine(a, c, **cfg), in_bytes, note="sweep")

    for dtype in (torch.float16, torch.bfloat16):
        a16, c16 = a.to(dtype), c.to(dtype)
        b.row(rows, f"pair_cosine {str(dtype)[6:]}", "triton (launch table)", lambda: pc.pair_cosine(a16, c16), in_bytes / 2)
        b.row(rows, f"pair_cosine {str(dtype)[6:]}", "torch F.cosine_similarity",
              lambda: F.cosine_similarity(a16, c16, dim=1), in_bytes / 2)
        del a16, c16
    del a, c
    if b.cuda:
        torch.cuda.empty_cache()

    # Indexed form: n pairs over a table of table_rows; bytes counted as the rows gathered.
    table = torch.randn(sz["table_rows"], d, device=dev, generator=gen)
    idx = torch.randint(0, sz["table_rows"], (n, 2), device=dev, generator=gen, dtype=torch.int32)
    got = pc.pair_cosine_indexed(table, idx, check_bounds=False)
    sample = torch.arange(0, n, max(1, n // 10_000), device=dev)
    pairs = idx[sample].long()
    ref = pc.pair_cosine_reference(table[pairs[:, 0]].cpu(), table[pairs[:, 1]].cpu())
    err = (got[sample].cpu() - ref).abs().max().item()
    b.say(f"pair_cosine_indexed fp32 {n:,} pairs over {sz['table_rows']:,} rows: max |ours - float64| "
          f"({sample.numel():,} sampled pairs) {err:.2e}")
    op, gathered = "pair_cosine_indexed fp32", in_bytes + n * 2 * 4
    t_idx = b.row(rows, op, "triton, gather fused (no bounds check)",
                  lambda: pc.pair_cosine_indexed(table, idx, check_bounds=False), gathered, peak=True)
    b.row(rows, op, "triton, with bounds check", lambda: pc.pair_cosine_indexed(table, idx), gathered)
    i0, i1 = idx[:, 0].long(), idx[:, 1].long()
    b.row(rows, op, "torch gather + F.cosine_similarity", lambda: F.cosine_similarity(table[i0], table[i1], dim=1),
          gathered, peak=True, note=lambda ms: f"fused is {ms / t_idx:.1f}x torch")
    del table, idx, i0, i1
    if b.cuda:
        torch.cuda.empty_cache()


def exact_check(scores, ids, queries, corpus, sample, tol=2e-5):
    """Against float64 on `sample` queries: (mismatched ids at non-tied ranks, ranks checked, max score error)."""
    q = queries[sample].double()
    c = corpus.double()
    inv = lambda x: torch.where(x > 0, 1 / x.clamp_min(1e-300), torch.zeros_like(x))  # noqa: E731
    full = (q @ c.T) * inv(q.norm(dim=1))[:, None] * inv(c.norm(dim=1))[None, :]
    k = ids.shape[1]
    top = torch.topk(full, k + 1, dim=1).values
    ref_s = top[:, :k]
    err = (scores[sample].double() - ref_s).abs().max().item()
    gaps_prev = torch.cat([torch.full_like(top[:, :1], float("inf")), top[:, :-1] - top[:, 1:]], dim=1)
    clear = (gaps_prev[:, :k] > 2 * tol) & (gaps_prev[:, 1:k + 1] > 2 * tol)
    ref_i = torch.topk(full, k, dim=1).indices
    bad = int(((ids[sample] != ref_i) & clear).sum())
    return bad, int(clear.sum()), err


def agreement(a: torch.Tensor, b: torch.Tensor):
    """(same id at the same rank, fraction of b's ids found in a's row)."""
    a, b = a.cpu(), b.cpu()
    same_rank = (a == b).float().mean().item()
    overlap = (a[:, :, None] == b[:, None, :]).any(dim=1).float().mean().item()
    return same_rank, overlap


def bench_topk(b: Bench, sz: dict, rows: list, sweep: list):
    dev, d, k = b.device, sz["d"], sz["k"]
    gen = torch.Generator(device=dev).manual_seed(1)
    corpus32 = torch.randn(sz["corpus"], d, device=dev, generator=gen)
    queries32 = torch.randn(sz["queries"], d, device=dev, generator=gen)
    near = sz["queries"] // 4
    pick = torch.randint(0, sz["corpus"], (near,), device=dev, generator=gen)
    queries32[:near] = corpus32[pick] + 0.5 * torch.randn(near, d, device=dev, generator=gen)
    flops = 2 * sz["queries"] * sz["corpus"] * d
    sample = torch.randperm(sz["queries"], device=dev, generator=gen)[: sz["exact_sample"]]
    what = f"cosine_topk {sz['corpus']:,} x {d}, {sz['queries']:,} q, k={k}"

    ids_of, ms_of = {}, {}
    for dtype in (torch.float16, torch.bfloat16):
        name = str(dtype)[6:]
        q, c = queries32.to(dtype), corpus32.to(dtype)
        s, i = ct.cosine_topk(q, c, k)
        bad, checked, err = exact_check(s, i, q, c, sample)
        ids_of[name] = i
        b.say(f"{what} {name}: vs float64 on {sample.numel()} queries: {bad} id mismatches at {checked} "
              f"non-tied ranks, max score error {err:.1e}")
        target = lambda ms: f"; target <= 45 ms: {'met' if ms <= 45 else 'MISSED'}" if b.cuda else ""  # noqa: E731
        ms_of[name] = b.row(rows, f"{what} {name}", "triton (launch table)", lambda: ct.cosine_topk(q, c, k), flops,
                            peak=True, note=lambda ms: f"exact: {bad} bad / {checked}{target(ms)}")
        if dtype == torch.float16:
            b.row(rows, f"{what} {name}", "triton (launch table), timed again", lambda: ct.cosine_topk(q, c, k), flops,
                  note="run-to-run spread")
            for entry in sweep:
                cfg = {key: v for key, v in entry.items() if key != "splits"}
                run = lambda: ct.cosine_topk(q, c, k, config=cfg, splits=entry.get("splits"))  # noqa: E731
                s2, i2 = run()
                bad2, _, _ = exact_check(s2, i2, q, c, sample)
                same, _ = agreement(i2, i)
                b.row(rows, f"{what} {name}", f"triton {entry}", run, flops, reps=max(2, b.reps // 2),
                      note=f"sweep; exact: {bad2} bad; same ids as launch table {same:.4f}")
        del q, c
    # fp32: exact fp32 dot ("ieee") and the tf32x3 option.
    for prec in ("ieee", "tf32x3"):
        s, i = ct.cosine_topk(queries32, corpus32, k, fp32_precision=prec)
        bad, checked, err = exact_check(s, i, queries32, corpus32, sample, tol=5e-5 if prec == "tf32x3" else 2e-5)
        b.row(rows, f"{what} float32", f"triton fp32_precision={prec}",
              lambda: ct.cosine_topk(queries32, corpus32, k, fp32_precision=prec), flops, reps=3, warmup=1,
              note=f"exact: {bad} bad / {checked}, max err {err:.1e}")

    # Baselines.
    qn = F.normalize(queries32, dim=1).half()
    cn = F.normalize(corpus32, dim=1).half()
    ts, ti = w.topk_torch(qn, cn, k, sz["chunk"])
    t = b.row(rows, f"{what} float16", f"torch mm + topk, {sz['chunk']}-query chunks (pre-normalised)",
              lambda: w.topk_torch(qn, cn, k, sz["chunk"]), flops, peak=True, reps=max(2, b.reps // 2))
    for name in ("float16", "bfloat16"):
        b.say(f"triton {name} is {t / ms_of[name]:.1f}x faster than torch chunked fp16")
        same, overlap = agreement(ids_of[name], ti)
        b.say(f"ids, triton {name} vs torch chunked fp16: same id at same rank {same:.4f}, "
              f"torch's ids found in ours {overlap:.4f} (torch's fp16 scores are rounded to fp16, so ties)")
    del qn, cn, ts, ti
    if b.cuda:
        torch.cuda.empty_cache()
    try:
        w.topk_semantic_search(queries32[: sz["st_warm"]], corpus32, k)  # warm-up
        holder = {}
        t = b.time_ms(lambda: holder.__setitem__("ids", w.topk_semantic_search(queries32, corpus32, k)), reps=1, warmup=0)
        peak = b.peak_extra_mib(lambda: w.topk_semantic_search(queries32[: sz["queries"] // 4], corpus32, k))
        rows.append((f"{what} float32", "sentence_transformers.util.semantic_search", t, flops, peak,
                     "one timed run; peak from a quarter of the queries"))
        for name in ("float16", "bfloat16"):
            b.say(f"triton {name} is {t / ms_of[name]:.1f}x faster than semantic_search fp32")
            same, overlap = agreement(ids_of[name], holder["ids"])
            b.say(f"ids, triton {name} vs semantic_search fp32: same id at same rank {same:.4f}, "
                  f"its ids found in ours {overlap:.4f}")
    except ImportError as e:
        b.say(f"sentence-transformers not importable ({e}); semantic_search baseline skipped")
    del corpus32, queries32


def kernel_rows(rows: list) -> list[list]:
    out = []
    for op, impl, ms, work, peak, note in rows:
        rate = f"{work / ms / 1e9:,.1f} TFLOP/s" if "topk" in op else f"{work / ms / 1e6:,.0f} GB/s"
        out.append([op, impl, f"{ms:.2f}", rate, fmt(peak, 0), note])
    return out


def bench_kernels(b: Bench, sz: dict, sweep: list, only: str | None) -> list[list]:
    b.say(f"Sizes: {sz}")
    ceilings(b)
    rows: list = []
    for name, run in (("pair", lambda: bench_pair(b, sz, rows)), ("topk", lambda: bench_topk(b, sz, rows, sweep))):
        if only in (None, "kernels", name):
            t0 = time.time()
            run()
            b.say(f"({name} benchmarks took {time.time() - t0:.0f} s)")
    return kernel_rows(rows)


# ---- models: predict and encode against sentence-transformers ---------------------------------

def timed_once(fn, warm_rows: int = 2048):
    """Seconds of one fn(None) (every row), after fn(warm_rows) (a slice) has warmed the CUDA
    context, the kernels and the allocator: one full run each keeps the stage inside its budget."""
    fn(warm_rows)
    w.sync()
    t = time.perf_counter()
    result = fn(None)
    w.sync()
    return time.perf_counter() - t, result


def bench_models(b: Bench, dry: bool) -> list[list]:
    import numpy as np
    from scipy.stats import spearmanr
    from sentence_transformers import CrossEncoder as STCrossEncoder, SentenceTransformer

    from transenc.labeling import bi_scores
    from transenc.models import BiEncoder, CrossEncoder
    from transenc.packing import padding_efficiency
    from transenc.pairset import PairSet
    from transenc.readers import read_pairs

    device = str(b.device)
    pairs, _ = read_pairs(w.DEVICE_DATA / "pairs.tsv")
    if dry:
        pairs = PairSet(pairs.sentences[:400], pairs.pairs[(pairs.pairs < 400).all(1)][:200])
    texts = [pairs.pair_texts(i) for i in range(len(pairs))]
    b.say(f"Models: {len(pairs):,} pairs over {len(pairs.sentences):,} sentences (.device-data/pairs.tsv); random "
          "weights. Ours counts tokenizing, as the anchors do (in brackets: from a ready token cache).")
    rows, folder = [], Path(tempfile.mkdtemp(prefix="transenc-gpu-models-"))
    for size in ("minilm-l6", "bert-base"):
        bi_dir, cross_dir = w.random_bert(size, folder, tiny=dry)
        st_ce = STCrossEncoder(str(cross_dir), device=device, max_length=128)
        ours_ce = CrossEncoder.load(cross_dir, device, max_length=128)
        t_a, s_a = timed_once(lambda n: np.asarray(st_ce.predict(texts[:n], batch_size=128, show_progress_bar=False)))
        t_o, s_o = timed_once(lambda n: ours_ce.predict(pairs.sentences, pairs.pairs[:n], batch_size=256,
                                                        show_progress=False))
        cache = ours_ce.token_cache(pairs.sentences)
        t_m, _ = timed_once(lambda n: ours_ce.predict(cache, pairs.pairs[:n], batch_size=256, show_progress=False))
        eff = padding_efficiency(ours_ce.batches(cache, pairs.pairs, 256))
        rows.append([size, "cross-encoder predict", f"{t_a:.2f}", f"{t_o:.2f} ({t_m:.2f})", f"{len(pairs) / t_o:,.0f} pairs",
                     f"{t_a / t_o:.1f}x", f"Spearman vs anchor {spearmanr(s_a, s_o).statistic:.4f}", f"{eff:.3f}"])
        del st_ce, ours_ce
        st_bi, ours_bi = SentenceTransformer(str(bi_dir), device=device), BiEncoder.load(bi_dir, device)
        t_a, e_a = timed_once(lambda n: st_bi.encode(pairs.sentences[:n], batch_size=32, convert_to_tensor=True,
                                                     show_progress_bar=False))
        t_o, e_o = timed_once(lambda n: ours_bi.encode(pairs.sentences[:n], batch_size=256, show_progress=False))
        cos = F.cosine_similarity(e_a.float().cpu(), e_o, dim=1).min().item()
        rows.append([size, "bi-encoder encode", f"{t_a:.2f}", f"{t_o:.2f}", f"{len(pairs.sentences) / t_o:,.0f} sentences",
                     f"{t_a / t_o:.1f}x", f"min cosine vs anchor {cos:.4f}", ""])
        t_l, _ = timed_once(lambda n: bi_scores(ours_bi, pairs if n is None else pairs.head(n), batch_size=256,
                                                show_progress=False))
        rows.append([size, "bi-label (encode + fused pair cosine)", "", f"{t_l:.2f}", f"{len(pairs) / t_l:,.0f} pairs",
                     "", "", ""])
        del st_bi, ours_bi
    return rows


def show(path: Path) -> None:
    print(path.read_text() + f"(written to {path})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU under TRITON_INTERPRET=1")
    ap.add_argument("--out", help="folder of the results files (default: bench/results; a dry run's: a temporary one)")
    ap.add_argument("--only", choices=["kernels", "pair", "topk", "models"], default=None)
    args = ap.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("no CUDA device; use --dry-run to exercise the code paths on the CPU")
    device = torch.device("cpu" if args.dry_run else "cuda")
    out = Path(args.out or (tempfile.mkdtemp(prefix="transenc-dry-run-") if args.dry_run else w.REPO / "bench" / "results"))
    dry = " (dry run: numbers meaningless)" * args.dry_run
    if args.only in (None, "kernels", "pair", "topk"):
        b = Bench(device, (DRY if args.dry_run else FULL)["reps"])
        rows = bench_kernels(b, DRY if args.dry_run else FULL, DRY_TOPK_SWEEP if args.dry_run else TOPK_SWEEP, args.only)
        show(write_table("gpu-kernels", "transenc Triton kernels" + dry,
                          b.lines, ["op", "implementation", "time ms", "rate", "peak extra MiB", "note"], rows,
                          str(device), out))
    if args.only in (None, "models"):
        b = Bench(device, 1)
        rows = bench_models(b, args.dry_run)
        show(write_table("gpu-models", "Cross-encoder predict and encode against sentence-transformers" + dry, b.lines,
                          ["model", "what", "anchor s", "ours s", "ours per s", "speed-up", "agreement", "padding eff."],
                          rows, str(device), out))


if __name__ == "__main__":
    main()
