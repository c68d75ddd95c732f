"""Scoring models on the labeled sets (dev and test): per-pair scores and the figures made from
them. Every named model's scores are kept (in memory and in out/scores/), so the teacher figure,
do no harm and a resumed run reuse them instead of scoring the same model again."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from transenc import distributed
from transenc.metrics import score100
from transenc.pairset import PairSet
from transenc.run_folder import RESUME_HINT, kept_scores_name
from transenc.writers import atomic_open, writing

LabeledSets = dict[str, tuple[PairSet, str]]  # name -> (pairs with gold labels, metric)


def check_name(fit: str, i: int) -> str:
    """The lasting name of the i-th (1-based) dev check of a fit (e.g. "cycle2-bi-0"): do no harm
    corrects the exported model's gain for its choice among the checks by their kept scores."""
    return f"{fit}-check{i}"


def figures(sets: LabeledSets, scores: list[dict[str, np.ndarray]]) -> dict | None:
    """Per set: each model's score and the ensemble's (K > 1); at the top, their means over the
    sets, which is what selects checkpoints and cycles."""
    if not sets:
        return None
    per_set = {}
    for name, (pairs, metric) in sets.items():
        per_set[name] = {"metric": metric, "models": [score100(metric, s[name], pairs.labels) for s in scores]}
        if len(scores) > 1:
            per_set[name]["ensemble"] = score100(metric, np.mean([s[name] for s in scores], 0), pairs.labels)
    result = {"models": np.mean([r["models"] for r in per_set.values()], 0).tolist(), "sets": per_set}
    if len(scores) > 1:
        result["ensemble"] = float(np.mean([r["ensemble"] for r in per_set.values()]))
    return result


def taught(dev: LabeledSets, bi: list[dict], cross: list[dict], bi_targets: str,
           calibrated_on: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """What the bi-encoders were taught, scored on the dev sets: their targets (Recipe.bi_targets)
    made from the dev pairs' scores by the models that labeled the training pairs (`bi`, `cross`:
    each labeler's {set: scores}; calibrated_on: the training pairs' labels, see combine_targets).
    A teacher below the start model leaves a long fit nothing to learn (MRPC: bench/results/mrpc-cpu.md)."""
    from transenc.recipes import combine_targets

    per_set = {}
    for name, (pairs, metric) in dev.items():
        targets = combine_targets(np.mean([s[name] for s in cross], 0), np.mean([s[name] for s in bi], 0), bi_targets,
                                  calibrated_on)
        per_set[name] = {"metric": metric, "models": [score100(metric, targets, pairs.labels)]}
    return {"models": [float(np.mean([r["models"][0] for r in per_set.values()]))], "sets": per_set}


class DevScores:
    """`score(encoder, pairs, group)` over the dev and test sets, cached by model name and length."""

    def __init__(self, dev: LabeledSets, test: LabeledSets, score: Callable, folder: Path, precision: str):
        # A model's scores depend on the length it reads and the precision it runs at: both are in
        # the name they are kept under, so a run resumed where `auto` means another precision
        # never sets scores of one precision against another's.
        self.precision = precision
        self.sets = {"dev": dev, "test": test}
        self.score = score
        self.folder = folder
        self.kept: dict[str, dict[str, np.ndarray]] = {}

    @property
    def dev(self) -> LabeledSets:
        return self.sets["dev"]

    def scores(self, encoder, split: str, name: str | None = None, group="all") -> dict[str, np.ndarray]:
        """{set: per-pair scores} of one model on the split's sets. `name`: the model's lasting name
        (e.g. "cycle2-bi-0"); unnamed models are never kept."""
        if name is None:
            return {s: self.score(encoder, pairs, group) for s, (pairs, _) in self.sets[split].items()}
        kept = self.kept_scores(name, encoder.max_length, split)
        return self._score_and_keep(encoder, split, name, group) if kept is None else kept

    def check(self, encoder, name: str, group="all") -> dict:
        """A fit's dev check (figures), its scores kept under `name` (check_name): always scored
        afresh, since a process that ran the fit before may have kept other weights' scores there."""
        return figures(self.dev, [self._score_and_keep(encoder, "dev", name, group)])

    def _score_and_keep(self, encoder, split: str, name: str, group) -> dict[str, np.ndarray]:
        key = self._key(name, encoder.max_length, split)
        self.kept[key] = {s: self.score(encoder, pairs, group) for s, (pairs, _) in self.sets[split].items()}
        if distributed.is_main() and self.kept[key]:
            with writing(self.folder, RESUME_HINT):
                self.folder.mkdir(exist_ok=True)  # in the run's folder, which is not made again if it went
            with atomic_open(self.folder / f"{key}.npz", binary=True, hint=RESUME_HINT) as f:
                np.savez(f, **self.kept[key])
        return self.kept[key]

    def kept_scores(self, name: str, length: int, split: str) -> dict[str, np.ndarray] | None:
        """A named model's kept scores at that length, from memory or out/scores/; None if never scored."""
        key = self._key(name, length, split)
        if key not in self.kept:
            path = self.folder / f"{key}.npz"
            if not path.is_file():
                return None
            with np.load(path) as saved:
                self.kept[key] = dict(saved)
        return self.kept[key]

    def _key(self, name: str, length: int, split: str) -> str:
        return kept_scores_name(name, length, self.precision, split)

    def evaluate(self, encoders: list, split: str, names: list[str] | None = None, group="all") -> dict | None:
        """The split's figures (see `figures`) for one model or K side by side."""
        if not self.sets[split]:
            return None
        names = names or [None] * len(encoders)
        return figures(self.sets[split], [self.scores(e, split, n, group) for e, n in zip(encoders, names)])
