"""Training at the reference recipe's shapes on the same weights and STS-B batches: the plain step against ours,
fp32 steps against bf16 autocast, fits on CUDA with their host syncs; fills bench/results/training-<machine>.md.

    python -m pytest bench/test_bench_training.py -q -s                         # the CPU's rows
    python -m pytest bench/test_bench_training.py -q -s --bench-device cuda     # the GPU's (bench/gpu_check.sh)

The loop before the step policies, foreach AdamW and the CUDA policy on the CPU are no longer timed:
bench/results/archive/training-loop-cpu.md.
"""
import collections
import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import workloads as w
from transenc import fit

pytest.importorskip("pytest_benchmark")
KINDS = ["cross", "bi"]
DROPOUT_ROUNDS = 4
STEP, FIT, CUDA_FIT = "training steps on the CPU", "whole fit on the CPU, fit.CPU_POLICY", "whole fit on CUDA, fit.GPU_POLICY"
PLAIN, OURS = "plain: a tokenizer call, one padded batch (anchor)", "ours: token cache, length-sorted sub-batches"
BASELINE = {STEP: PLAIN, FIT: "fp32 steps"}
FITS = {"fp32 steps": ("cpu", "fp32", FIT, fit.CPU_POLICY, 2), "bf16 steps": ("cpu", "bf16", FIT, fit.CPU_POLICY, 2),
        "auto precision": ("cuda", "auto", CUDA_FIT, fit.GPU_POLICY, 10)}  # (device, precision, workload, policy, warm-up)
# bf16 fits with the engine's dropout (transenc.dropout, what CPU fits run) against torch's, head to head
TORCH_DROPOUT = f"bf16 steps, torch's dropout (anchor), median of {DROPOUT_ROUNDS} alternating rounds"
ENGINE_DROPOUT = f"bf16 steps, the engine's dropout, median of {DROPOUT_ROUNDS} alternating rounds"
# compared with another than its workload's baseline (the anchor with none)
SETTING_BASELINE = {ENGINE_DROPOUT: TORCH_DROPOUT, TORCH_DROPOUT: TORCH_DROPOUT}
STEPS = {STEP: {"cross": 24, "bi": 8}, FIT: {"cross": 40, "bi": 12}, CUDA_FIT: {"cross": 120, "bi": 30}}

NOTE = ("the reference recipe's batches: cross-encoder 32 rows (both orders) at max length 64, bi-encoder 128 pairs "
        "at 32, all-MiniLM-L6-v2; steps: forward, backward, clip and AdamW a batch; plain: as sentence-transformers' "
        "fit collates; a whole fit: fit_cross / fit_bi, random soft labels, no dev checks, after a warm-up; whole fits "
        "on the CPU drop with the engine's dropout (transenc.dropout) but for the head to head's anchor, torch's")

TITLE = "Training steps and whole fits"
HEADER = ["workload", "encoder", "setting", "steps/s", "vs the baseline", "host syncs per step"]


def table_rows(measured: dict) -> list[list]:
    """measured: (workload, encoder, setting) -> steps/s; (CUDA_FIT, encoder, "syncs") -> syncs per step."""
    rows = []
    for (workload, kind, setting), rate in measured.items():
        if setting != "syncs":
            base = SETTING_BASELINE.get(setting, BASELINE.get(workload))  # the setting this one is compared with
            baseline = measured.get((workload, kind, base)) if setting != base else None
            against = f"{rate / baseline:.2f}x" + (f" (vs {base})" if setting in SETTING_BASELINE else "") if baseline else ""
            rows.append([workload, kind, setting, f"{rate:.3f}", against,
                         measured.get((workload, kind, "syncs"), "")])
    return rows


def runs_on(device: str, wanted: str) -> None:
    if device != wanted or wanted == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"a benchmark of --bench-device {wanted}" + " (and a CUDA device)" * (wanted == "cuda"))


def train_steps(encoder, step_loss, batches: list[np.ndarray], targets: torch.Tensor) -> float:
    """Forward, backward, clip and AdamW step per batch; `step_loss(idx, targets)`. Returns steps/s."""
    model = encoder.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9)  # near-zero lr: every setting sees the same weights
    start = time.perf_counter()
    for idx in batches:
        step_loss(idx, targets[idx]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return len(batches) / (time.perf_counter() - start)


@pytest.mark.parametrize("setting", [PLAIN, OURS], ids=["plain", "ours"])
@pytest.mark.parametrize("kind", KINDS)
def test_step(benchmark, table, device, kind, setting, sts_pairs):
    runs_on(device, "cpu")
    encoder, rows, batch = w.fit_setup(kind, None, sts_pairs)
    order = np.random.default_rng(0).permutation(len(rows))
    batches = [order[i * batch:(i + 1) * batch] for i in range(STEPS[STEP][kind])]
    targets = torch.from_numpy(np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32))
    if setting == PLAIN:
        reference = fit.cross_step_loss_reference if kind == "cross" else fit.bi_step_loss_reference
        texts = lambda idx: [(sts_pairs.sentences[a], sts_pairs.sentences[b]) for a, b in rows[idx]]  # noqa: E731
        step_loss = lambda idx, t: reference(encoder, texts(idx), t)  # noqa: E731
    else:
        ours, cache = fit.cross_step_loss if kind == "cross" else fit.bi_step_loss, encoder.token_cache(sts_pairs.sentences)
        step_loss = lambda idx, t: ours(encoder, cache, rows[idx], t)  # noqa: E731
    table.note(NOTE)
    table.measured[(STEP, kind, setting)] = w.timed(benchmark, train_steps, encoder, step_loss, batches, targets)


@pytest.mark.parametrize("setting", FITS)
@pytest.mark.parametrize("kind", KINDS)
def test_fit(benchmark, table, device, kind, setting, sts_pairs):
    """Whole fits of all-MiniLM-L6-v2: on the CPU, fp32 steps against bf16 autocast (fp32 weights and AdamW
    state: what `--precision auto` trains in on a CPU with bf16 arithmetic); on CUDA, the CUDA policy."""
    from transenc.precision import cpu_training_precision

    on, precision, workload, policy, warm_up = FITS[setting]
    runs_on(device, on)
    table.note(NOTE)
    table.note(f"`--precision auto` trains in {cpu_training_precision()} on this CPU" if on == "cpu" else "")
    model = w.minilm_path()
    w.fit_steps_per_second(kind, model, sts_pairs, warm_up, policy, on, precision)  # warm-up, untimed
    table.measured[(workload, kind, setting)] = w.timed(benchmark, w.fit_steps_per_second, kind, model, sts_pairs,
                                                        STEPS[workload][kind], policy, on, precision)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_head_to_head(benchmark, table, device, kind, sts_pairs, monkeypatch):
    """bf16 fits with the engine's dropout against the same fits with torch's, in alternating rounds (single
    timings on this machine move by 5-10%): steps/s medians, and each round's ratio."""
    runs_on(device, "cpu")
    steps, model, engine = STEPS[FIT][kind], w.minilm_path(), fit.engine_dropout
    fits = {arm: w.prepared_fit(kind, model, sts_pairs, steps, fit.CPU_POLICY, precision="bf16")[1]
            for arm in (TORCH_DROPOUT, ENGINE_DROPOUT)}

    def rate(arm: str) -> float:
        monkeypatch.setattr(fit, "engine_dropout", engine if arm == ENGINE_DROPOUT else lambda m: contextlib.nullcontext())
        return steps / w.seconds(fits[arm])

    def rounds() -> dict:
        for arm in fits:  # warm-up, untimed
            rate(arm)
        rates = {arm: [] for arm in fits}
        for r in range(DROPOUT_ROUNDS):
            for arm in (list(fits) if r % 2 == 0 else list(fits)[::-1]):
                rates[arm].append(rate(arm))
        return rates

    rates = w.timed(benchmark, rounds)
    for arm, values in rates.items():
        table.measured[(FIT, kind, arm)] = float(np.median(values))
    table.note(f"dropout head to head, {kind}, {steps}-step fits: the engine's steps/s over torch's by round: " +
               ", ".join(f"{e / t:.3f}" for e, t in zip(rates[ENGINE_DROPOUT], rates[TORCH_DROPOUT])))


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_syncs_per_step(table, device, kind, sts_pairs):
    """Synchronizing calls per step of a CUDA-policy fit (torch.cuda.set_sync_debug_mode), loading
    excluded, the fit's one closing loss check included; and where they came from."""
    runs_on(device, "cuda")
    steps, (_, fit_call) = 30, w.prepared_fit(kind, w.minilm_path(), sts_pairs, 30, fit.GPU_POLICY, "cuda")
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
    table.measured[(CUDA_FIT, kind, "syncs")] = f"{len(syncs) / steps:.2f} ({dict(places)})"
