"""Training steps and their memory on a CPU: on document-long texts a step whole, every activation
kept for its backward (as before fit.CPU_STEP_TOKENS, and as one padded batch is in
sentence-transformers' fit), against the same step in checkpointed parts of fit.CPU_PART_TOKENS;
and, on those texts and on sentences, attention by SDPA (its math path: no fused kernel takes
dropout) against the eager attention a step runs now (fit.CPU_STEP_ATTENTION). Seconds a step and
peak memory, each run its own process. Fills long-training-<cpu>.md.

    python -m pytest bench/test_bench_long_training.py -q -s      # on an idle machine
"""
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

import workloads as w

pytest.importorskip("pytest_benchmark")
WHOLE, SDPA, POLICY = "whole step (before)", "fit.CPU_POLICY, no attention switch (before)", "fit.CPU_POLICY (now)"
# (encoder, model, max length, words a text, steps): bi steps are 128 pairs (256 texts), cross steps
# 32 pairs, as the default recipe's; 300 words are ~400 tokens, more than any length here.
CASES = {"bi-128": ("bi", "minilm", 128, 300, 3), "bi-256": ("bi", "minilm", 256, 300, 3),
         "cross-256": ("cross", "minilm", 256, 300, 3), "cross-512": ("cross", "minilm", 512, 300, 3),
         "bi-64-base": ("bi", "mpnet", 64, 300, 3),
         "bi-32-sentences": ("bi", "minilm", 32, 12, 60), "cross-64-sentences": ("cross", "minilm", 64, 12, 60)}
# A whole step of 128 pairs of 256-token texts (65k tokens) grew past 21 GB (by hand, on 23 GiB): in parts only.
# Steps of 8,192 tokens or fewer (cross at 256, sentences) are whole under either policy.
# transformers gives MPNet no SDPA (eager in every row): its rows differ in the step's parts alone.
RUNS = {"bi-64-base": (WHOLE, POLICY),
        **{case: (SDPA, POLICY) for case in ("bi-256", "cross-256", "bi-32-sentences", "cross-64-sentences")}}

TITLE = "Training steps on document-long texts and sentences: checkpointed parts, eager attention"
HEADER = ["encoder", "model", "max length", "words a text", "tokens a step", "step", "attention in the step",
          "seconds a step", "vs the first row", "peak RSS MiB", "peak own memory MiB"]


def table_rows(measured: dict) -> list[list]:
    """measured: (encoder, model, max length, words, step) -> (tokens a step, attention, seconds a step,
    peak RSS, peak own)."""
    rows, first = [], {}
    for (encoder, model, length, words, step), (tokens, attention, s, rss, own) in measured.items():
        base = first.setdefault((encoder, model, length, words), s)
        rows.append([encoder, model, length, words, f"{tokens:,}", step, attention, f"{s:.2f}", f"{base / s:.2f}x",
                     f"{rss:,.0f}", f"{own:,.0f}"])
    return rows


def fit_steps(pairs_file: str, kind: str, model: str, max_length: int, steps: int, step: str, out: str) -> None:
    """In a process of its own: `steps` steps of fit_bi / fit_cross on the file's pairs with random soft
    labels; writes the seconds a step (loading and tokenizing not counted), the tokens of a step and the
    attention implementation the model ran in its steps, as recorded inside fit.step_attention."""
    import torch
    from transenc import fit
    from transenc.models import BiEncoder, CrossEncoder
    from transenc.readers import read_pairs

    pairs, _ = read_pairs(pairs_file)
    torch.manual_seed(0)
    encoder = BiEncoder.load(model, "cpu") if kind == "bi" else CrossEncoder.load(model, "cpu", max_length)
    cache = encoder.token_cache(pairs.sentences)
    recipe = w.RECIPES["transenc"]
    cfg = replace(recipe.bi if kind == "bi" else recipe.cross, epochs=1, warmup=0.0, eval_every=0,
                  max_length=max_length)
    rows = pairs.pairs[:steps * cfg.batch_size]
    policy = fit.CPU_POLICY if step == POLICY else \
        replace(fit.CPU_POLICY, attention="", **({"step_tokens": 0} if step == WHOLE else {}))
    ran = _record_step_attention(fit)
    lengths = cache.sentence_row_lengths(rows.reshape(-1)) if kind == "bi" else cache.pair_row_lengths(rows)
    labels = np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32)
    start = time.perf_counter()
    (fit.fit_bi if kind == "bi" else fit.fit_cross)(encoder, cache, rows, labels, cfg, 0, None, policy)
    seconds = (time.perf_counter() - start) / steps
    tokens = fit.tokens_held(lengths, max_length) // steps
    json.dump({"seconds": seconds, "tokens": tokens, "attention": ", ".join(sorted(ran))}, open(out, "w"))


def _record_step_attention(fit) -> set:
    """Wraps fit.step_attention so that it records the implementation the model runs inside it."""
    ran, switch = set(), fit.step_attention

    @contextmanager
    def recording(model, attention):
        with switch(model, attention):
            ran.add(model.config._attn_implementation)
            yield

    fit.step_attention = recording
    return ran


@pytest.mark.parametrize("case", CASES)
def test_long_training(benchmark, table, tmp_path, case):
    kind, model_name, max_length, words, steps = CASES[case]
    model = w.minilm_path() if model_name == "minilm" else w.mpnet_path()
    if model is None:
        pytest.skip("all-mpnet-base-v2 not found (bash scripts/get_mpnet.sh)")
    pairs = w.write_unique_pairs(tmp_path / "pairs.tsv", steps * 128, words, np.random.default_rng(0))
    for step in RUNS.get(case, (WHOLE, SDPA, POLICY)):
        out = tmp_path / "step.json"
        command = [sys.executable, __file__, str(pairs), kind, str(model), str(max_length), str(steps), step, str(out)]
        measure = (lambda *a: w.timed(benchmark, w.own_memory_peak, *a)) if step == POLICY else w.own_memory_peak
        _, rss, own = measure(command, tmp_path / "log")
        result = json.loads(out.read_text())
        table.measured[kind, model_name, max_length, words, step] = (result["tokens"], result["attention"],
                                                                     result["seconds"], rss, own)
    table.note("3 steps (60 on sentences) of the default recipe's (`--recipe transenc`) batches, bi 128 pairs, "
               "cross 32 pairs, on pairs of texts of demo-corpus words (each text once), every row cut at the max length; "
               "random soft labels; training precision auto (bf16 autocast with AVX512-BF16 or AMX, else fp32); "
               "minilm: all-MiniLM-L6-v2, mpnet: all-mpnet-base-v2")
    table.note("tokens a step: the rows' tokens at the max length, without padding; "
               "seconds a step: the fit's, loading and tokenizing not counted; "
               "own memory: RssAnon, sampled every 20 ms, of the whole process")
    table.note("bi-encoder at 256: in parts only; a whole step (65k tokens) grew past 21 GB, on a machine of "
               "23 GiB, and was stopped (by hand); steps of at most 8,192 tokens (cross at 256, sentences) "
               "are whole either way")
    table.note("attention in the step: the implementation the model ran its steps with (recorded inside "
               "fit.step_attention); sdpa: torch's scaled_dot_product_attention, its math path in a training step "
               "(the fused kernels take no dropout); eager: the architecture's own attention (transformers' eager), "
               "which fit.CPU_POLICY switches a bf16 step to; mpnet has no SDPA in transformers")


if __name__ == "__main__":
    fit_steps(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:8])
