"""Probe one training stage of a recipe on labels saved by an earlier `transenc train` run.

Trains a bi- or cross-encoder from the start model on a chosen label mix, checks dev every N
steps, and prints dev and test at the best dev step (test is only reported). Used to screen
recipe ideas in minutes instead of running whole cycles; every figure lands in
bench/results/recipes.md beside the full-cycle runs.

  python bench/recipe_probe.py --run runs/ref --stage bi --labels mean --lr 2e-5 --epochs 1
  python bench/recipe_probe.py --run runs/ref --label-quality   # no training: each label mix's
                                                                # Spearman on the dev/test pairs
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from transenc.evaluate import spearman100
from transenc.fit import FitConfig, fit_bi, fit_cross
from transenc.label import bi_scores, cross_scores
from transenc.models import DEFAULT_MODEL, BiEncoder, CrossEncoder, resolve_model
from transenc.readers import read_pairs
from transenc.train import cross_targets

STS = "../shared/data/stsbenchmark"


def label_mix(run: str, name: str) -> np.ndarray:
    bi = np.load(f"{run}/cycle1/labels_bi.npy")
    if name == "bi":
        return bi
    cross = np.load(f"{run}/cycle1/labels_cross.npy")
    return {"cross": cross, "mean": (bi + cross) / 2}[name]


def label_quality(run: str, pairs) -> None:
    """How good a teacher each label mix is: its Spearman on the STS-B dev and test pairs among the
    unlabeled pairs (dev may pick a mix; test is only reported)."""
    from transenc.evaluate import spearman100

    row_of = {pairs.pair_texts(i): i for i in range(len(pairs))}
    for split in ("dev", "test"):
        gold, _ = read_pairs(f"{STS}/sts-{split}.csv")
        found = [(i, row_of[gold.pair_texts(i)]) for i in range(len(gold)) if gold.pair_texts(i) in row_of]
        mine = np.array([r for _, r in found])
        labels = gold.labels[[i for i, _ in found]]
        figures = {name: round(spearman100(label_mix(run, name)[mine], labels), 2) for name in ("bi", "cross", "mean")}
        print(json.dumps({"split": split, "pairs": len(found), **figures}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--pairs", default="runs/stsb_unlabeled.tsv")
    p.add_argument("--label-quality", action="store_true", help="only score the run's label mixes on dev/test pairs")
    p.add_argument("--stage", choices=("bi", "cross"))
    p.add_argument("--labels", choices=("bi", "cross", "mean"))
    p.add_argument("--targets", choices=("raw", "rank"), default="raw")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=2021)
    a = p.parse_args()

    pairs, _ = read_pairs(a.pairs)
    if a.label_quality:
        return label_quality(a.run, pairs)
    if not (a.stage and a.labels):
        p.error("--stage and --labels are needed to train")
    dev, _ = read_pairs(f"{STS}/sts-dev.csv")
    test, _ = read_pairs(f"{STS}/sts-test.csv")
    labels = cross_targets(label_mix(a.run, a.labels), a.targets)
    torch.manual_seed(a.seed)
    model = str(resolve_model(DEFAULT_MODEL))
    if a.stage == "bi":
        enc = BiEncoder.load(model, "cpu", None, 32)
        fit, train_pairs, score = fit_bi, pairs.pairs, bi_scores
        cfg = FitConfig(batch_size=a.batch or 128, epochs=a.epochs, lr=a.lr, warmup=a.warmup, eval_every=a.eval_every)
    else:
        enc = CrossEncoder.load(model, "cpu", 64)
        fit, train_pairs, score = fit_cross, pairs.both_orders(), cross_scores
        labels = np.concatenate([labels, labels])
        cfg = FitConfig(batch_size=a.batch or 32, epochs=a.epochs, lr=a.lr, warmup=a.warmup, eval_every=a.eval_every)
    cache = enc.token_cache(pairs.sentences)
    dev_cache, test_cache = enc.token_cache(dev.sentences), enc.token_cache(test.sentences)
    curve = []

    def evaluate():
        d = spearman100(score(enc, dev, dev_cache, show_progress=False), dev.labels)
        t = spearman100(score(enc, test, test_cache, show_progress=False), test.labels)
        curve.append((d, t))
        print(f"  check {len(curve)}: dev {d:.2f} test {t:.2f}", flush=True)
        return d

    t0 = time.perf_counter()
    result = fit(enc, cache, train_pairs, labels, cfg, a.seed, evaluate)
    best = max(range(len(curve)), key=lambda i: curve[i][0])
    print(json.dumps({**vars(a), "steps": len(result.losses), "best_check": best + 1,
                      "best_dev": round(curve[best][0], 2), "test_at_best_dev": round(curve[best][1], 2),
                      "seconds": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
