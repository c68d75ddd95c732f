"""Document-long texts through `transenc label`, bi and cross, against sentence-transformers at its
defaults, and against transenc's own batches sized by rows alone (models.CPU_BATCH_TOKENS lifted: how
they were before the cap); seconds and peak memory of each as its own process. Fills long-texts-<cpu>.md.

    python -m pytest bench/test_bench_long_texts.py -q -s      # on an idle machine
"""
import os
import sys

import numpy as np
import pytest

import workloads as w

pytest.importorskip("pytest_benchmark")
PAIRS = int(os.environ.get("TRANSENC_BENCH_LONG_PAIRS", 1000))
WORDS = 800  # a text's words: more than either model's tokens

TITLE = "Document-long texts through `transenc label`"
HEADER = ["encoder", "run", "seconds", "pairs/s", "vs anchor", "peak RSS MiB", "peak own memory MiB"]
ANCHOR = "anchor: sentence-transformers, fp32, batch 32 (its defaults)"
ROWS_ALONE = "batches sized by rows alone (the CPU cap lifted)"
# `transenc label` in a process whose batches are sized as before the CPU cap
_UNCAPPED = ("import sys; from transenc import models; models.CPU_BATCH_TOKENS = 10**9; "
             "from transenc.cli import main; sys.exit(main(sys.argv[1:]))")


def table_rows(measured: dict) -> list[list]:
    """measured: (encoder, run) -> (seconds, peak RSS MiB, peak own memory MiB)."""
    rows = []
    for (encoder, run), (s, rss, own) in measured.items():
        anchor = measured.get((encoder, ANCHOR))
        rows.append([encoder, run, f"{s:.1f}", f"{PAIRS / s:,.1f}", f"{anchor[0] / s:.2f}x" if anchor else "-",
                     f"{rss:,.0f}", f"{own:,.0f}"])
    return rows


@pytest.mark.parametrize("encoder", ["bi", "cross"])
def test_long_texts(benchmark, table, tmp_path, encoder):
    pairs = w.write_unique_pairs(tmp_path / "long.tsv", PAIRS, WORDS, np.random.default_rng(0))
    model = str(w.minilm_path() if encoder == "bi" else w.trained_cross_encoder())

    def run(name, command, after=(), measure=w.own_memory_peak):  # command's output file follows it, then `after`
        out = tmp_path / f"{len(table.measured)}.npy"
        table.measured[encoder, name] = measure([*command, str(out), *after], tmp_path / "log")
        return np.load(out)

    def ours(precision, program=w.TRANSENC):
        return w.label_command(pairs, "--mode", encoder, "--model", model, "--precision", precision, "--out",
                               program=program)

    if encoder == "bi":
        # its default batch, 32
        anchor = run(ANCHOR, [sys.executable, "-c", w.ST_PAIR_COSINES, str(pairs), model], after=["32"])
    else:
        anchor = run(ANCHOR, [sys.executable, "-c", w.ST_CROSS_SCORES, str(pairs), model])
    for precision in ("auto", "fp32"):
        measure = (lambda *a: w.timed(benchmark, w.own_memory_peak, *a)) if precision == "auto" else w.own_memory_peak
        name = f"`transenc label --precision {precision}`"
        scores = run(name, ours(precision), measure=measure)
        run(f"{name}, {ROWS_ALONE}", ours(precision, program=(sys.executable, "-c", _UNCAPPED)))
    agree = float(np.abs(scores - anchor).max())  # fp32's
    table.note(f"{PAIRS:,} pairs of {WORDS}-word texts (demo-corpus words, each text once): every text is cut, at 256 "
               "tokens (bi: all-MiniLM-L6-v2) or the pair at 128 (cross: MiniLM trained 600 steps as a cross-encoder, "
               "workloads.trained_cross_encoder); `--precision auto` is int8 on a CPU with VNNI")
    table.note(f"{encoder}: transenc fp32's scores within {agree:.1e} of the anchor's")
    table.note("own memory: RssAnon, sampled every 20 ms; vs anchor: the anchor's seconds over the row's")
    assert agree < 1e-4
