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
from transenc.bundled import DEMO_PAIRS

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
_ST_BI = ("import sys, numpy, torch; from sentence_transformers import SentenceTransformer; "
          "pairs = [l.rstrip('\\n').split('\\t') for l in open(sys.argv[1], encoding='utf-8')]; "
          "e = SentenceTransformer(sys.argv[2], device='cpu').encode([s for p in pairs for s in p], "
          "convert_to_tensor=True, normalize_embeddings=True); "
          "numpy.save(sys.argv[3], (e[0::2] * e[1::2]).sum(1).numpy())")
_ST_CROSS = ("import sys, numpy; from sentence_transformers import CrossEncoder; "
             "pairs = [l.rstrip('\\n').split('\\t') for l in open(sys.argv[1], encoding='utf-8')]; "
             "numpy.save(sys.argv[3], CrossEncoder(sys.argv[2], device='cpu').predict(pairs))")


def table_rows(measured: dict) -> list[list]:
    """measured: (encoder, run) -> (seconds, peak RSS MiB, peak own memory MiB)."""
    rows = []
    for (encoder, run), (s, rss, own) in measured.items():
        anchor = measured.get((encoder, ANCHOR))
        rows.append([encoder, run, f"{s:.1f}", f"{PAIRS / s:,.1f}", f"{anchor[0] / s:.2f}x" if anchor else "-",
                     f"{rss:,.0f}", f"{own:,.0f}"])
    return rows


def write_long_pairs(path, n, seed=0):
    """n pairs of WORDS-word runs of the demo corpus, each text numbered: no text twice."""
    words, rng = DEMO_PAIRS.read_text().split(), np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = (" ".join(words[s:s + WORDS]) for s in rng.integers(0, len(words) - WORDS, 2))
            f.write(f"{a} #{2 * i}\t{b} #{2 * i + 1}\n")


@pytest.mark.parametrize("encoder", ["bi", "cross"])
def test_long_texts(benchmark, table, tmp_path, encoder):
    pairs = tmp_path / "long.tsv"
    write_long_pairs(pairs, PAIRS)
    model = str(w.minilm_path() if encoder == "bi" else w.trained_cross_encoder())

    def run(name, *command, measure=w.own_memory_peak):
        out = tmp_path / f"{len(table.measured)}.npy"
        table.measured[encoder, name] = measure([sys.executable, *command, str(out)], tmp_path / "log")
        return np.load(out)

    def ours(entry, precision):
        return [*entry, "label", "--pairs", str(pairs), "--mode", encoder, "--model", model, "--device", "cpu",
                "--precision", precision, "--out"]

    anchor = run(ANCHOR, "-c", _ST_BI if encoder == "bi" else _ST_CROSS, str(pairs), model)
    for precision in ("auto", "fp32"):
        measure = (lambda *a: w.timed(benchmark, w.own_memory_peak, *a)) if precision == "auto" else w.own_memory_peak
        name = f"`transenc label --precision {precision}`"
        scores = run(name, *ours(["-m", "transenc"], precision), measure=measure)
        run(f"{name}, {ROWS_ALONE}", *ours(["-c", _UNCAPPED], precision))
    agree = float(np.abs(scores - anchor).max())  # fp32's
    table.note(f"{PAIRS:,} pairs of {WORDS}-word texts (demo-corpus words, each text once): every text is cut, at 256 "
               "tokens (bi: all-MiniLM-L6-v2) or the pair at 128 (cross: MiniLM trained 600 steps as a cross-encoder, "
               "workloads.trained_cross_encoder); `--precision auto` is int8 on a CPU with VNNI")
    table.note(f"{encoder}: transenc fp32's scores within {agree:.1e} of the anchor's")
    table.note("own memory: RssAnon, sampled every 20 ms; vs anchor: the anchor's seconds over the row's")
    assert agree < 1e-4
