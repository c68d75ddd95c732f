"""Measure our packed cross-encoder predict and bi-encoder encode against sentence-transformers
on the same weights and the same STS-B data, in one process, and write a markdown table to
bench/results/cpu-models-<cpu>.md (or --out).

    python bench/report_models.py [--rounds 2] [--bf16]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
import model_workloads as w  # noqa: E402


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def best_of(rounds: int, fn, *args):
    times, result = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time the opt-in bf16 autocast mode")
    parser.add_argument("--out")
    args = parser.parse_args()
    pairs = w.sts_unique_pairs()
    sentences = pairs.sentences
    load_before = os.getloadavg()
    rows = []

    ours_ce, st_ce = w.cross_models()
    t_st, s_st = best_of(args.rounds, w.st_predict, st_ce, pairs, 32)
    for batch in (32, 64):
        t_ours, s_ours = best_of(args.rounds, w.ours_predict, ours_ce, pairs, batch)
        rows.append(("cross-encoder predict", f"{len(pairs):,} pairs", "CrossEncoder.predict bs 32", t_st,
                     f"ours fp32, batch ~{batch}", t_ours, len(pairs),
                     f"padding eff. {w.cross_padding(ours_ce, pairs, batch):.3f}; max |diff| {np.abs(s_ours - s_st).max():.1e}"))
    if args.bf16:
        t_bf, s_bf = best_of(args.rounds, w.ours_predict, ours_ce, pairs, 64, "bf16")
        rows.append(("cross-encoder predict", f"{len(pairs):,} pairs", "CrossEncoder.predict bs 32", t_st,
                     "ours bf16 autocast, batch ~64", t_bf, len(pairs),
                     f"Spearman vs fp32 {spearmanr(s_bf, s_st).statistic:.5f}"))

    ours_bi, st_bi = w.bi_models()
    t_st, e_st = best_of(args.rounds, w.st_encode, st_bi, sentences, 32)
    for batch in (64, 128):
        t_ours, e_ours = best_of(args.rounds, w.ours_encode, ours_bi, sentences, batch)
        diff = (torch.nn.functional.normalize(e_ours, dim=1) - e_st).abs().max().item()
        rows.append(("bi-encoder encode", f"{len(sentences):,} sentences", "SentenceTransformer.encode bs 32", t_st,
                     f"ours fp32, batch ~{batch}", t_ours, len(sentences),
                     f"padding eff. {w.bi_padding(ours_bi, sentences, batch):.3f}; max |diff| {diff:.1e}"))

    name = cpu_name()
    out = Path(args.out or Path(__file__).parent / "results" / f"cpu-models-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.md")
    lines = [
        f"# Cross-encoder predict and bi-encoder encode vs sentence-transformers on {name}",
        "",
        f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} by `python bench/report_models.py --rounds {args.rounds}`"
        f"{' --bf16' if args.bf16 else ''} (best of {args.rounds}, one process, same weights: all-MiniLM-L6-v2; "
        "the cross-encoder is its encoder with a seeded fresh one-logit head).",
        "",
        f"- Hardware: {name}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"- Load average before: {' / '.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (a shared machine: other jobs may have run)",
        "- Data: STS-B train+dev+test, unique pairs (labels unused) and their unique sentences",
        "",
        "| what | data | anchor | anchor s | ours | ours s | ours per s | speed-up | notes |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for what, data, anchor, t_a, ours, t_o, n, notes in rows:
        lines.append(f"| {what} | {data} | {anchor} | {t_a:.1f} | {ours} | {t_o:.1f} | {n / t_o:,.0f} | {t_a / t_o:.2f}x | {notes} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
