"""The scoring forward against this CPU's GEMM peak, at fp32, bf16 and int8, and where the rest of its
time goes: fills bench/results/roofline-<cpu>.md.

Everything runs on one core (torch single-threaded, one stream), as each of `transenc label`'s
streams does (one per core). The peak of an arithmetic is the best rate its GEMM reaches on one
core over the forward's own shapes and a large square: F.linear for fp32, and for int8 the best of
`torch._int_mm` (what Int8Linear calls on a CPU with AMX, or AVX-VNNI without AVX-512), the engine's own
int8 matmul (what it calls elsewhere: AVX512-VNNI's or AVX2's u8 x s8 products, csrc/int8_gemm.h) and
fbgemm's dynamically quantized Linear (AVX2 kernels, a yardstick from outside). The forward's rate is its encoder layers' Linear
multiply-adds (2 ops each) over its whole time. The breakdown times each kind of op exclusively (a
call inside a timed call counts only for the inner one) by wrapping the functions the forward
calls; what no wrapper covers is the rest: Python, reshapes, residual adds, pooling, the cosine. bf16
is autocast, `--precision auto` on a CPU with AMX: its peak is the best of F.linear on bf16 tensors
(oneDNN's AMX or AVX512-BF16 kernels) and the same inner product on a weight oneDNN packed once (what a
bf16 pass's layers call under the engine's avx512_bf16 variant, quantize.packed_bf16_linear), and its
forward is skipped where the CPU has no bf16 arithmetic. The
engine's fused int8 self-attention runs as its three steps under the clock (self_attention_in_steps).

    python -m pytest bench/test_bench_roofline.py -q -s
"""
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import workloads as w
from transenc import _C, models, ops, quantize, tokens
from transenc.precision import slow_on_this_cpu

pytest.importorskip("pytest_benchmark")
COLUMNS = [(kind, precision) for kind in ("cross", "bi") for precision in ("fp32", "bf16", "int8")]
GEMMS = ("GEMMs (fp32, bf16: F.linear, or under the engine's avx512_bf16 variant oneDNN on weights packed once, "
         "quantize.packed_bf16_linear; int8: torch._int_mm, or the engine's int8_linear with its epilogue, and "
         "int8_linear_gelu_u8 with GELU and the next quantization fused)")
QUANTIZE = "int8: quantize activations (engine)"
ATTENTION = ("attention (fp32: SDPA; int8, and bf16 under the engine's avx512_bf16 variant: the engine's, ops.attention, "
             "bf16 products in that variant; bf16 elsewhere: SDPA)")
# (owner, attribute, phase): the functions the forward calls, by the kind of work they do
NORM = ("layer norm (fp32; bf16: torch's, or under the engine's avx512_bf16 variant ops.layer_norm_bf16, the residual add "
        "and its output's bf16 rows fused; int8 engine: ops.layer_norm_u8, the residual add and its output's quantization "
        "fused)")
GELU = "GELU (fp32; bf16: torch's, or under the engine's avx512_bf16 variant ops.gelu_bf16_)"
WRAPPED = [(F, "linear", GEMMS), (quantize, "packed_bf16_linear", GEMMS), (torch, "_int_mm", GEMMS),
           (ops, "int8_linear", GEMMS), (ops, "int8_linear_gelu_u8", GEMMS),
           (ops, "quantize_rows", QUANTIZE), (ops, "quantize_rows_u8", QUANTIZE),
           (ops, "dequantize_rows_", "int8: dequantize epilogue (engine)"),
           (F, "scaled_dot_product_attention", ATTENTION), (ops, "attention", ATTENTION),
           (F, "layer_norm", NORM), (ops, "layer_norm_u8", NORM), (ops, "layer_norm_bf16", NORM),
           (F, "gelu", GELU), (ops, "gelu_bf16_", GELU),
           (F, "embedding", "embedding lookups"),
           (models, "pack_pairs", "packing"), (models, "pack_sentences", "packing"),
           (tokens.TokenCache, "__init__", "tokenizing")]
REST = "rest: Python, reshapes, residual adds, pooling, cosine"
PHASES = list(dict.fromkeys(phase for *_, phase in WRAPPED)) + [REST]
# MiniLM's Linear shapes (hidden 384, 1,536 inside) at ~2,000 tokens a batch, and a large square
SHAPES = [(2048, 384, 1152), (2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384), (2048, 2048, 2048)]

TITLE = "The scoring forward against this CPU's GEMM peak, fp32, bf16 and int8 (one core)"
HEADER = ["what", *(f"{kind} {precision}" for kind, precision in COLUMNS)]


def table_rows(measured: dict) -> list[list]:
    """measured: ("peak", precision) -> (ops/s, shape); (kind, precision) -> {"seconds", "pairs", "ops",
    "useful_ops", "phases"}."""
    giga = lambda x: f"{x / 1e9:,.1f}"  # noqa: E731

    def row(what, f, needs_peak=False):
        cells = []
        for kind, precision in COLUMNS:
            peak = measured.get(("peak", precision), (None,))[0]
            m = measured.get((kind, precision))
            cells.append("-" if m is None or (needs_peak and not peak) else f(m, peak))
        return [what, *cells]

    peak_cells = [f"{giga(measured[('peak', p)][0])} ({measured[('peak', p)][1]})" if ("peak", p) in measured
                  else "-" for _, p in COLUMNS]
    rows = [["GEMM peak, one core: G ops/s (best kernel, shape m x k x n)", *peak_cells],
            row("pairs/s, one core", lambda m, _: f"{m['pairs'] / m['seconds']:,.0f}"),
            row("Linear G ops per 1,000 pairs, executed", lambda m, _: f"{m['ops'] / m['pairs'] * 1e3 / 1e9:,.1f}"),
            row("of which on pad tokens", lambda m, _: f"{1 - m['useful_ops'] / m['ops']:.1%}"),
            row("the whole forward's G ops/s", lambda m, _: giga(m["ops"] / m["seconds"])),
            row("**share of the peak, whole forward**", lambda m, peak: f"**{m['ops'] / m['seconds'] / peak:.0%}**",
                True),
            row("share of the peak inside the GEMMs alone", lambda m, peak: f"{m['ops'] / m['phases'][GEMMS] / peak:.0%}",
                True)]
    if ("peak", "int8") in measured:  # the hardware's faster arithmetic: how far any forward is from it
        int8_peak = measured[("peak", "int8")][0]
        rows.append(row("share of this core's int8 peak, whole forward",
                        lambda m, _: f"{m['ops'] / m['seconds'] / int8_peak:.0%}"))
    for phase in PHASES:
        rows.append(row(f"time: {phase}", lambda m, _, phase=phase: f"{m['phases'][phase] / m['seconds']:.1%} "
                                                                    f"({m['phases'][phase]:.2f} s)"))
    return rows


@contextmanager
def single_core():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def gemm_rate(method: str, m: int, k: int, n: int, seconds: float = 1.5) -> float:
    """ops/s of one [m, k] x [k, n] GEMM: "fp32" and "bf16" as F.linear's x @ w.T; "bf16 packed" as
    quantize.packed_bf16_linear's, the weight packed once; "int8" as Int8Linear's torch._int_mm
    on the weight's transposed view; "int8 engine" as the engine's int8_linear on quantized rows (its fused
    epilogue included); "int8 fbgemm" as torch's dynamically quantized Linear (fbgemm's u8 x s8 kernels,
    its activation quantization included)."""
    if method == "int8":
        a = torch.randint(-128, 128, (m, k), dtype=torch.int8)
        b = torch.randint(-127, 128, (n, k), dtype=torch.int8).t()
        call = lambda: torch._int_mm(a, b)  # noqa: E731
    elif method == "int8 engine":
        q, scale, offset = ops.quantize_rows_u8(torch.randn(m, k))
        packed = ops.pack_int8_weights(torch.randint(-_C.INT8_PAIR_MAX // 2, _C.INT8_PAIR_MAX // 2 + 1, (n, k),
                                                     dtype=torch.int8))
        ones = torch.ones(n)
        call = lambda: ops.int8_linear(q, k, packed, n, scale, offset, ones, ones, ones)  # noqa: E731
    elif method == "bf16 packed":
        a, packed = torch.randn(m, k, dtype=torch.bfloat16), quantize.pack_bf16_weight(torch.randn(n, k))
        call = lambda: quantize.packed_bf16_linear(a, packed, None)  # noqa: E731
    elif method == "int8 fbgemm":
        torch.backends.quantized.engine = "fbgemm"
        linear = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(k, n)), dtype=torch.qint8)
        x = torch.randn(m, k)
        call = lambda: linear(x)  # noqa: E731
    else:
        dtype = torch.bfloat16 if method == "bf16" else torch.float32
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        call = lambda: F.linear(a, b)  # noqa: E731
    call()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        call()
        calls += 1
    return 2 * m * k * n * calls / elapsed


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_peak(benchmark, table, precision):
    """A precision's peak: the best rate of its GEMMs on one core (bf16: F.linear's, and on a packed weight
    where bf16 passes pack theirs, the engine's avx512_bf16 variant; int8: torch._int_mm's, the engine's or
    fbgemm's)."""
    methods = {"int8": ["int8", "int8 engine", "int8 fbgemm"],
               "bf16": ["bf16"] + (["bf16 packed"] if "avx512_bf16" in _C.variants() else [])}.get(precision, [precision])
    with single_core():
        rates = w.timed(benchmark, lambda: {(method, shape): gemm_rate(method, *shape)
                                            for method in methods for shape in SHAPES})
    method, shape = max(rates, key=rates.get)
    table.measured[("peak", precision)] = (rates[method, shape], f"{method}, {'x'.join(map(str, shape))}")
    for method in methods:
        table.note(f"{method} GEMM rates, one core, G ops/s: " + ", ".join(
            f"{'x'.join(map(str, s))} {rates[method, s] / 1e9:.1f}" for s in SHAPES))


class PhaseClock:
    """Exclusive seconds per phase: a wrapped call's time minus the wrapped calls inside it (a stack of
    open calls per thread; the forwards here run one stream, so the phases add up to the wall time)."""

    def __init__(self):
        self.seconds, self.open = dict.fromkeys(PHASES, 0.0), threading.local()

    def wrap(self, fn, phase):
        def timed(*args, **kwargs):
            stack = self.open.__dict__.setdefault("stack", [])
            stack.append(0.0)  # time of the timed calls inside this one
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.seconds[phase] += spent - stack.pop()
                if stack:
                    stack[-1] += spent
        return timed

    @contextmanager
    def installed(self):
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in WRAPPED]
        for (owner, name, fn), (*_, phase) in zip(originals, WRAPPED):
            setattr(owner, name, self.wrap(fn, phase))
        originals.append((ops, "int8_self_attention_u8", ops.int8_self_attention_u8))
        ops.int8_self_attention_u8 = self_attention_in_steps
        try:
            yield self
        finally:
            for owner, name, fn in originals:
                setattr(owner, name, fn)


def self_attention_in_steps(q, k, packed, n, row_scale, row_offset, col_scale, col_sum, bias, key_mask, heads,
                            queries=None):
    """ops.int8_self_attention_u8 as its three steps, each under its own phase: the same results bit for bit
    (tests/test_precision.py), so that the clock shows attention apart from the GEMMs."""
    b, t = key_mask.shape
    projection = ops.int8_linear(q, k, packed, n, row_scale, row_offset, col_scale, col_sum, bias)
    attended = ops.attention(projection.view(b, t, n), key_mask, heads, queries)
    return attended, ops.quantize_rows_u8(attended.reshape(-1, attended.shape[-1]))


def counted_ops(model, pairs, kind: str, precision: str) -> tuple[int, int]:
    """(ops executed, ops on real tokens) of one pass over `pairs`, from the batches' shapes as scoring packs
    them: per token, 2 x in x out per Linear of the encoder layers (the cross-encoder's pooler and head run on
    one row), except where a cross-encoder's last layer runs past attention for the first token alone (its int8
    copy's, and its bf16 copy's where that attends on the engine)."""
    from transenc.labeling import BI_BATCH, CROSS_BATCH, INT8_CROSS_BATCH

    cache = model.token_cache(pairs.sentences)
    batches = model.batches(cache, pairs.pairs, INT8_CROSS_BATCH if precision == "int8" else CROSS_BATCH) \
        if kind == "cross" else model.batches(cache, np.arange(len(cache)), BI_BATCH)
    ops_of = lambda linears: sum(2 * m.in_features * m.out_features for m in linears)  # noqa: E731
    per_token = ops_of(m for name, m in model.model.named_modules()
                       if isinstance(m, torch.nn.Linear) and "layers." in name)
    with model._inference_weights(precision):  # the copy that the pass runs
        first_token_only = kind == "cross" and getattr(model.model, "last_layer_first_token", False)
    last = model.model.layers[-1] if first_token_only else None
    skipped = ops_of([last.attention_out, last.intermediate, last.output]) if first_token_only else 0

    def count(tokens: int, rows: int) -> int:
        return tokens * per_token - (tokens - rows) * skipped

    return (sum(count(b.input_ids.numel(), len(b.input_ids)) for b in batches),
            sum(count(int(b.attention_mask.sum()), len(b.input_ids)) for b in batches))


@pytest.mark.parametrize("kind, precision", COLUMNS)
def test_forward(benchmark, table, sts_pairs, kind, precision):
    """The scoring of STS-B's unique pairs on one core: timed plain, then once more under the phase clock."""
    from transenc.labeling import INT8_CROSS_BATCH, load_scorer, score

    if reason := slow_on_this_cpu(precision):  # int8 without VNNI, AMX or AVX2, bf16 without AVX512-BF16 or AMX
        table.note(f"{precision} forwards not run: {reason}, and its GEMM peak row shows what torch runs it at")
        pytest.skip(reason)
    path = w.trained_cross_encoder() if kind == "cross" else w.minilm_path()
    model = load_scorer(str(path), kind, "cpu", precision)
    run = lambda: score(model, sts_pairs, precision=precision, show_progress=False)  # noqa: E731
    with single_core():
        score(model, sts_pairs.head(64), precision=precision, show_progress=False)  # warm-up
        w.timed(benchmark, run)
        with PhaseClock().installed() as clock:
            start = time.perf_counter()
            run()
            instrumented = time.perf_counter() - start
    executed, useful = counted_ops(model, sts_pairs, kind, precision)
    plain = benchmark.stats.stats.min
    phases = {**clock.seconds, REST: instrumented - sum(clock.seconds.values())}
    table.measured[(kind, precision)] = {"seconds": plain, "pairs": len(sts_pairs), "ops": executed,
                                         "useful_ops": useful,
                                         "phases": {p: s * plain / instrumented for p, s in phases.items()}}
    table.note(f"STS-B's {len(sts_pairs):,} unique pairs through `transenc.labeling.score` at its default batches "
               f"(int8 cross: {INT8_CROSS_BATCH} pairs); cross: the MiniLM cross-encoder of "
               "workloads.trained_cross_encoder; bi: all-MiniLM-L6-v2, each sentence once")
    table.note(f"{kind} {precision}: plain {plain:.2f} s, under the phase clock {instrumented:.2f} s (the time rows "
               "are the clock's shares scaled to the plain time; under the clock the fused int8 self-attention runs "
               "as its three steps, bit for bit the same, so that attention shows apart)")
