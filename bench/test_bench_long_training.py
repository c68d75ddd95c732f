"""Training steps on document-long texts: a step whole, every activation kept for its backward (as
before fit.CPU_STEP_TOKENS, and as one padded batch is in sentence-transformers' fit), against the
same step in checkpointed parts of fit.CPU_PART_TOKENS; seconds a step and peak memory, each run its
own process. Fills long-training-<cpu>.md.

    python -m pytest bench/test_bench_long_training.py -q -s      # on an idle machine
"""
import json
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

import workloads as w

pytest.importorskip("pytest_benchmark")
WORDS = 300  # a text's words: ~400 tokens, more than any length below
STEPS = 3
WHOLE, IN_PARTS = "whole (before)", "in parts (fit.CPU_POLICY)"
# (encoder, model, max length): bi steps are 128 pairs (256 texts), cross steps 32 pairs, as the default recipe's
CASES = {"bi-128": ("bi", "minilm", 128), "bi-256": ("bi", "minilm", 256), "cross-512": ("cross", "minilm", 512),
         "bi-64-base": ("bi", "mpnet", 64)}
# A whole step of 128 pairs of 256-token texts (65k tokens) grew past 21 GB (by hand, on 23 GiB): in parts only.
RUNS = {"bi-256": (IN_PARTS,)}

TITLE = "Training steps on document-long texts"
HEADER = ["encoder", "model", "max length", "tokens a step", "step", "seconds a step", "vs whole",
          "peak RSS MiB", "peak own memory MiB"]


def table_rows(measured: dict) -> list[list]:
    """measured: (encoder, model, max length, step) -> (tokens a step, seconds a step, peak RSS, peak own)."""
    rows = []
    for (encoder, model, length, step), (tokens, s, rss, own) in measured.items():
        whole = measured.get((encoder, model, length, WHOLE))
        rows.append([encoder, model, length, f"{tokens:,}", step, f"{s:.2f}", f"{whole[1] / s:.2f}x" if whole else "-",
                     f"{rss:,.0f}", f"{own:,.0f}"])
    return rows


def fit_steps(pairs_file: str, kind: str, model: str, max_length: int, step: str, out: str) -> None:
    """In a process of its own: STEPS steps of fit_bi / fit_cross on the file's pairs with random soft
    labels; writes the seconds a step (loading and tokenizing not counted) and the tokens of a step."""
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
    rows = pairs.pairs[:STEPS * cfg.batch_size]
    if step == WHOLE:
        fit.CPU_POLICY = replace(fit.CPU_POLICY, step_tokens=0)
    lengths = cache.sentence_row_lengths(rows.reshape(-1)) if kind == "bi" else cache.pair_row_lengths(rows)
    labels = np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32)
    start = time.perf_counter()
    (fit.fit_bi if kind == "bi" else fit.fit_cross)(encoder, cache, rows, labels, cfg, 0)
    seconds = (time.perf_counter() - start) / STEPS
    tokens = fit.tokens_held(lengths, max_length) // STEPS
    json.dump({"seconds": seconds, "tokens": tokens}, open(out, "w"))


@pytest.mark.parametrize("case", CASES)
def test_long_training(benchmark, table, tmp_path, case):
    kind, model_name, max_length = CASES[case]
    model = w.minilm_path() if model_name == "minilm" else w.mpnet_path()
    if model is None:
        pytest.skip("all-mpnet-base-v2 not found (bash scripts/get_mpnet.sh)")
    pairs = w.write_unique_pairs(tmp_path / "long.tsv", 3 * 128, WORDS, np.random.default_rng(0))
    for step in RUNS.get(case, (WHOLE, IN_PARTS)):
        out = tmp_path / "step.json"
        command = [sys.executable, __file__, str(pairs), kind, str(model), str(max_length), step, str(out)]
        measure = (lambda *a: w.timed(benchmark, w.own_memory_peak, *a)) if step == IN_PARTS else w.own_memory_peak
        _, rss, own = measure(command, tmp_path / "log")
        result = json.loads(out.read_text())
        table.measured[kind, model_name, max_length, step] = (result["tokens"], result["seconds"], rss, own)
    table.note(f"{STEPS} steps of the default recipe's (`--recipe transenc`) batches, bi 128 pairs, cross 32 pairs, "
               f"on pairs of {WORDS}-word texts (demo-corpus words, each text once), every row cut at the max length; "
               "random soft labels; training precision auto (bf16 autocast with AVX512-BF16 or AMX, else fp32); "
               "minilm: all-MiniLM-L6-v2, mpnet: all-mpnet-base-v2")
    table.note("tokens a step: the rows' tokens at the max length, without padding; "
               "seconds a step: the fit's, loading and tokenizing not counted; "
               "own memory: RssAnon, sampled every 20 ms, of the whole process")
    table.note("bi-encoder at 256: in parts only; a whole step (65k tokens) grew past 21 GB, on a machine of "
               "23 GiB, and was stopped (by hand)")


if __name__ == "__main__":
    fit_steps(*sys.argv[1:3], sys.argv[3], int(sys.argv[4]), *sys.argv[5:7])
