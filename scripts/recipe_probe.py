"""Probe one training stage of a recipe on saved labels, and measure label quality before training.

A label *source* is a saved label array: `bi` / `cross` (a `transenc train` run's cycle-1
labels_bi.npy / labels_cross.npy, with --run), a `.npy` file, or a scores file written by
`transenc label` (its last column). A *mix* is the mean of the sources given. The bi-encoder
student ends near its teacher's label quality, so `--label-quality` ranks the mixes first, by their
Spearman on the dev pairs found among the unlabeled pairs (the paper's pairs hold every STS set's
pairs); then one stage is trained from the start model on the chosen mix, dev checked every N steps.
Selection is on the mean of the dev sets; test is only reported.

  python scripts/recipe_probe.py --pairs P --label-quality --labels minilm.tsv mpnet.tsv
  python scripts/recipe_probe.py --pairs P --stage bi --labels minilm.tsv mpnet.tsv --lr 2e-5 --epochs 1
  python scripts/recipe_probe.py --pairs P --stage cross --labels minilm.tsv --epochs 2 --save-labels cross.npy
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from transenc.metrics import spearman100
from transenc.fit import FitConfig, fit_bi, fit_cross
from transenc.labeling import bi_scores, cross_scores
from transenc.models import DEFAULT_MODEL, BiEncoder, CrossEncoder, resolve_model
from transenc.readers import read_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEV = {"sts-b-dev": DATA / "stsbenchmark" / "sts-dev.csv", "sick-r-trial": DATA / "sick-r" / "sick-trial.tsv"}
TEST = {"sts-b-test": DATA / "stsbenchmark" / "sts-test.csv"}


def as_targets(labels: np.ndarray, kind: str) -> np.ndarray:
    """The labels as they are ("raw"), or their percentile ranks in [0, 1] ("rank")."""
    return labels if kind == "raw" else (rankdata(labels) / len(labels)).astype(np.float32)


def load_source(source: str, run: str | None) -> np.ndarray:
    if source in ("bi", "cross"):
        return np.load(f"{run}/cycle1/labels_{source}.npy")
    if source.endswith(".npy"):
        return np.load(source)
    with open(source, encoding="utf-8") as f:
        return np.array([float(line.rsplit("\t", 1)[1]) for line in f], dtype=np.float32)


def gold_rows(pairs, labeled) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `pairs` that are the labeled set's pairs (in either order), and their gold scores."""
    row_of = {pairs.pair_texts(i): i for i in range(len(pairs))}
    found = []
    for i in range(len(labeled)):
        a, b = labeled.pair_texts(i)
        row = row_of.get((a, b), row_of.get((b, a)))
        if row is not None:
            found.append((row, labeled.labels[i]))
    return np.array([r for r, _ in found]), np.array([g for _, g in found])


def label_quality(pairs, sources: list[str], run: str | None) -> None:
    """Each source and each mean of two or more of them (of the labels as they are, and of their
    percentile ranks: a mix that no source's scale dominates), scored on every dev and test set's pairs."""
    arrays = {s: load_source(s, run) for s in sources}
    ranked = {s: as_targets(a, "rank") for s, a in arrays.items()}
    mixes = [c for n in range(1, len(sources) + 1) for c in itertools.combinations(sources, n)]
    sets = {name: gold_rows(pairs, read_pairs(path)[0]) for name, path in {**DEV, **TEST}.items()}
    for mix, scale in [(m, "raw") for m in mixes] + [(m, "rank") for m in mixes if len(m) > 1]:
        labels = np.mean([(arrays if scale == "raw" else ranked)[s] for s in mix], 0)
        figures = {name: round(spearman100(labels[rows], gold), 2) for name, (rows, gold) in sets.items()}
        dev_mean = round(float(np.mean([figures[name] for name in DEV])), 2)
        print(json.dumps({"mix": " + ".join(Path(s).stem for s in mix), "scale": scale, "dev_mean": dev_mean,
                          **figures, "pairs": {name: len(rows) for name, (rows, _) in sets.items()}}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True, help="the unlabeled pairs the labels belong to")
    p.add_argument("--labels", nargs="+", required=True, help="label sources; a mix is their mean")
    p.add_argument("--run", help="a transenc train run, for the sources bi and cross")
    p.add_argument("--label-quality", action="store_true", help="only score the sources and their mixes")
    p.add_argument("--stage", choices=("bi", "cross"))
    p.add_argument("--targets", choices=("raw", "rank"), default="raw")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--save-labels", metavar="NPY",
                   help="after training, the best check's labels of every pair (a source for --label-quality)")
    a = p.parse_args()

    pairs, _ = read_pairs(a.pairs)
    if a.label_quality:
        return label_quality(pairs, a.labels, a.run)
    if not a.stage:
        p.error("--stage is needed to train")
    labels = as_targets(np.mean([load_source(s, a.run) for s in a.labels], 0).astype(np.float32), a.targets)
    torch.manual_seed(a.seed)
    model = str(resolve_model(DEFAULT_MODEL))
    if a.stage == "bi":
        enc = BiEncoder.load(model, "cpu", None, 32)
        fit, train_pairs, score = fit_bi, pairs.pairs, bi_scores
        cfg = FitConfig(batch_size=a.batch or 128, epochs=a.epochs, lr=a.lr, warmup=a.warmup, eval_every=a.eval_every,
                        precision=a.precision)
    else:
        enc = CrossEncoder.load(model, "cpu", 64)
        fit, train_pairs, score = fit_cross, pairs.both_orders(), cross_scores
        labels = np.concatenate([labels, labels])
        cfg = FitConfig(batch_size=a.batch or 32, epochs=a.epochs, lr=a.lr, warmup=a.warmup, eval_every=a.eval_every,
                        precision=a.precision)
    cache = enc.token_cache(pairs.sentences)
    sets = {name: read_pairs(path)[0] for name, path in {**DEV, **TEST}.items()}
    caches = {name: enc.token_cache(s.sentences) for name, s in sets.items()}
    curve = []

    def evaluate():
        figures = {name: spearman100(score(enc, s, caches[name], show_progress=False), s.labels)
                   for name, s in sets.items()}
        figures["dev_mean"] = float(np.mean([figures[name] for name in DEV]))
        curve.append(figures)
        print(f"  check {len(curve)}: " + " ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)
        return figures["dev_mean"]

    t0 = time.perf_counter()
    result = fit(enc, cache, train_pairs, labels, cfg, a.seed, evaluate)
    best = max(range(len(curve)), key=lambda i: curve[i]["dev_mean"])
    if a.save_labels:  # fit has put the best check's weights back
        np.save(a.save_labels, score(enc, pairs, cache, show_progress=False).astype(np.float32))
    print(json.dumps({**vars(a), "steps": len(result.losses), "best_check": best + 1,
                      **{k: round(v, 2) for k, v in curve[best].items()},
                      "seconds": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
