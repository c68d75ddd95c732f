"""Training steps, ours (length-sorted sub-batches from the token cache) vs the plain path
(a tokenizer call and one padded batch per step, as sentence-transformers' fit collates), on the
same all-MiniLM-L6-v2 weights and the same shuffled STS-B batches, in one run.

    python -m pytest bench/test_bench_training.py --benchmark-only -q

Batches as the reference recipe: cross-encoder 32 pairs (both orders) at max length 64,
bi-encoder 128 pairs at max length 32.

The loop benchmarks (`test_fit_loop`) time whole fits of a 2-layer MiniLM, where the loop's own
costs show, under three settings measured in the same run:
- before: the loop as it was (length-sorted sub-batches, the loss read back and checked every
  step, AdamW's plain per-tensor loop): CPU_POLICY with optimizer="plain", check_every=1;
- cpu foreach: the CPU policy as it was until fused AdamW ran on the CPU (the same sub-batches,
  foreach AdamW, losses read at checks only);
- cpu: today's CPU policy (the same, with fused AdamW);
- gpu: the CUDA policy run on the CPU (one fixed-shape batch per step, fused AdamW), for scale.
All in fp32 steps. `test_fit_precision`: whole fits of the real all-MiniLM-L6-v2, fp32 steps against
bf16 autocast (`--precision auto` on a CPU with bf16 arithmetic); writes training-precision-<cpu>.md.

On a CUDA device (`test_cuda_*`, bench/gpu_check.sh): whole fits of the real all-MiniLM-L6-v2 at the
default recipe's shapes, the loop as it was against the CUDA policy, and the CUDA policy's host
syncs per step, counted by torch.cuda.set_sync_debug_mode.
"""
import collections
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dataclasses import replace

import workloads as w
from results_writer import write_table
from transenc import fit
from transenc.models import BiEncoder, CrossEncoder

pytest.importorskip("pytest_benchmark")
STEPS = {"cross": 24, "bi": 8}
seconds = {}


def setup(kind, sts_pairs):
    torch.manual_seed(0)
    if kind == "cross":
        encoder, rows, batch = CrossEncoder.load(None, "cpu", 64), sts_pairs.both_orders(), 32
    else:
        encoder, rows, batch = BiEncoder.load(None, "cpu", None, 32), sts_pairs.pairs, 128
    targets = np.random.default_rng(1).uniform(0, 1, len(rows))
    return encoder, rows, w.training_batches(len(rows), batch, STEPS[kind]), targets


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_train_step_plain(benchmark, kind, sts_pairs):
    encoder, rows, batches, targets = setup(kind, sts_pairs)
    reference = fit.cross_step_loss_reference if kind == "cross" else fit.bi_step_loss_reference
    texts = lambda idx: [(sts_pairs.sentences[a], sts_pairs.sentences[b]) for a, b in rows[idx]]  # noqa: E731
    per_step = benchmark.pedantic(w.train_steps, args=(encoder, lambda idx, t: reference(encoder, texts(idx), t),
                                                       batches, targets), rounds=1, iterations=1)
    seconds[("plain", kind)] = per_step
    benchmark.extra_info["seconds_per_step"] = per_step


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_train_step_ours(benchmark, kind, sts_pairs):
    encoder, rows, batches, targets = setup(kind, sts_pairs)
    step_loss = fit.cross_step_loss if kind == "cross" else fit.bi_step_loss
    cache = encoder.token_cache(sts_pairs.sentences)
    per_step = benchmark.pedantic(w.train_steps, args=(encoder, lambda idx, t: step_loss(encoder, cache, rows[idx], t),
                                                       batches, targets), rounds=1, iterations=1)
    benchmark.extra_info["seconds_per_step"] = per_step
    if ("plain", kind) in seconds:
        benchmark.extra_info["speedup_vs_plain"] = seconds[("plain", kind)] / per_step


LOOPS = {"before": replace(fit.CPU_POLICY, optimizer="plain", check_every=1),
         "cpu foreach": replace(fit.CPU_POLICY, optimizer="foreach"), "cpu": fit.CPU_POLICY, "gpu": fit.GPU_POLICY}
LOOP_STEPS = {"cross": 16, "bi": 6}
loop_rate = {}


@pytest.fixture(scope="module")
def two_layer(sts_pairs):
    path = w.two_layer_minilm()
    for kind in ("cross", "bi"):  # warm-up (first-call costs of torch and the tokenizer), untimed
        w.fit_steps_per_second(kind, path, sts_pairs, 2, fit.CPU_POLICY, precision="fp32")
    return path


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_fit_loop(benchmark, kind, loop, two_layer, sts_pairs):
    # fp32 steps (the loops' own costs; the precision is measured apart, test_fit_precision)
    rate = benchmark.pedantic(w.fit_steps_per_second, args=(kind, two_layer, sts_pairs, LOOP_STEPS[kind], LOOPS[loop]),
                              kwargs={"precision": "fp32"}, rounds=1, iterations=1)
    loop_rate[(kind, loop)] = rate
    benchmark.extra_info["steps_per_second"] = rate
    if loop != "before" and (kind, "before") in loop_rate:
        benchmark.extra_info["speedup_vs_before"] = rate / loop_rate[(kind, "before")]


PRECISION_STEPS = {"cross": 40, "bi": 12}
precision_rate = {}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_fit_precision(benchmark, kind, precision, sts_pairs):
    """Whole fits of the real all-MiniLM-L6-v2 at the default recipe's shapes, fp32 steps against bf16
    autocast (what `--precision auto` trains in on a CPU with bf16 arithmetic); writes
    training-precision-<cpu>.md."""
    from transenc.precision import cpu_training_precision

    model = w.minilm_path()
    w.fit_steps_per_second(kind, model, sts_pairs, 2, fit.CPU_POLICY, precision=precision)  # warm-up, untimed
    rate = benchmark.pedantic(w.fit_steps_per_second, args=(kind, model, sts_pairs, PRECISION_STEPS[kind], fit.CPU_POLICY),
                              kwargs={"precision": precision}, rounds=1, iterations=1)
    precision_rate[(kind, precision)] = rate
    if len(precision_rate) == 4:
        rows = [[k, f"{precision_rate[(k, 'fp32')]:.3f}", f"{precision_rate[(k, 'bf16')]:.3f}",
                 f"{precision_rate[(k, 'bf16')] / precision_rate[(k, 'fp32')]:.2f}x"] for k in ("cross", "bi")]
        notes = [f"all-MiniLM-L6-v2, STS-B's unique pairs, the default recipe's batches (cross: 32 rows, both orders, "
                 f"max length 64; bi: 128 pairs, max length 32), {PRECISION_STEPS['cross']} cross / "
                 f"{PRECISION_STEPS['bi']} bi steps after a 2-step warm-up, "
                 "fit.CPU_POLICY (length-sorted sub-batches, fused AdamW); bf16: autocast, fp32 weights and AdamW state",
                 f"`--precision auto` trains in {cpu_training_precision()} on this CPU",
                 "regenerate: `python -m pytest bench/test_bench_training.py -k precision --benchmark-only -q -s` (idle machine)"]
        print(write_table("training-precision", "Training steps on the CPU: fp32 against bf16 autocast", notes,
                          ["model", "fp32 steps/s", "bf16 steps/s", "bf16 speed-up"], rows))


CUDA_STEPS = {"cross": 120, "bi": 30}  # the old loop runs ~4 cross steps/s on an H200: keep the stage short
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("loop", ["before", "gpu"])
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_cuda_fit(benchmark, kind, loop, sts_pairs):
    model = w.minilm_path()
    w.fit_steps_per_second(kind, model, sts_pairs, 10, fit.GPU_POLICY, "cuda")  # warm-up, untimed
    rate = benchmark.pedantic(w.fit_steps_per_second, args=(kind, model, sts_pairs, CUDA_STEPS[kind], LOOPS[loop], "cuda"),
                              rounds=1, iterations=1)
    loop_rate[("cuda", kind, loop)] = rate
    print(f"\n{kind} fit on CUDA, {loop} loop: {rate:.1f} steps/s"
          + (f" ({rate / loop_rate[('cuda', kind, 'before')]:.2f}x the loop before)" if loop != "before" else ""))


@needs_cuda
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_cuda_syncs_per_step(kind, sts_pairs):
    """Synchronizing calls per step of a CUDA-policy fit, loading excluded, the fit's one closing
    loss check included; and where they came from."""
    fit_call = w.prepared_fit(kind, w.minilm_path(), sts_pairs, 30, fit.GPU_POLICY, "cuda")
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit_call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [c for c in caught if "called a synchronizing" in str(c.message)]
    places = collections.Counter(f"{Path(c.filename).name}:{c.lineno}" for c in syncs)
    print(f"\n{kind} fit on CUDA: {len(syncs) / 30:.2f} syncs per step ({dict(places)})")
