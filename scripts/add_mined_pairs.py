"""Unlabeled pairs plus pairs mined among their own sentences (issue 33's domain study, AugSBERT / GPL style).

    python scripts/add_mined_pairs.py PAIRS OUT [--fraction 0.5] [--seed 0]

Every sentence of PAIRS is embedded by the start model (fp32); each keeps its nearest neighbour
that it is not already paired with in PAIRS (`transenc.api.mine`, k=3). Of these mined pairs,
fraction x len(PAIRS) are drawn with the seed and written after PAIRS' own pairs to OUT (s1<TAB>s2).
This is how bench/results/mrpc-cpu.md's `mrpc-train-plus-mined.tsv` was made (fraction 0.5).
"""
from __future__ import annotations

import argparse

import numpy as np

from transenc.api import mine
from transenc.readers import read_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs")
    parser.add_argument("out")
    parser.add_argument("--fraction", type=float, default=0.5, help="mined pairs per given pair")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pairs, _ = read_pairs(args.pairs)
    given = [pairs.pair_texts(i) for i in range(len(pairs))]
    paired = {frozenset(p) for p in given}
    sentences = list(dict.fromkeys(s for p in given for s in p))
    nearest = {}  # sentence -> its best mined pair not already given (mine() lists each query's ranks in order)
    for a, b, score in mine(sentences, k=3, precision="fp32"):
        if frozenset((a, b)) in paired:
            continue
        for s in (a, b):
            if s not in nearest or score > nearest[s][2]:
                nearest[s] = (a, b, score)
    mined = list({frozenset(p[:2]): p for p in nearest.values()}.values())
    draw = np.random.default_rng(args.seed).permutation(len(mined))[: round(args.fraction * len(given))]
    chosen = [mined[i] for i in sorted(draw)]
    with open(args.out, "w", encoding="utf-8") as f:
        for a, b in given:
            f.write(f"{a}\t{b}\n")
        for a, b, _ in chosen:
            f.write(f"{a}\t{b}\n")
    scores = np.array([s for _, _, s in chosen])
    print(f"{len(given)} given pairs, {len(sentences)} sentences, {len(mined)} mined candidates, "
          f"{len(chosen)} drawn (cosine median {np.median(scores):.2f}, 10th/90th pct "
          f"{np.percentile(scores, 10):.2f}/{np.percentile(scores, 90):.2f}) -> {args.out}")


if __name__ == "__main__":
    main()
