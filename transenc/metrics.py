"""Evaluation: Spearman x 100 between model scores and graded gold scores (STS), or ROC AUC x 100
against 0/1 gold labels (binary pair tasks: QQP, MRPC, QNLI-style files).

Understands the STS-B csv layout (sts-dev.csv, sts-test.csv) and a SentEval-style folder
(STS12-16 as STS.input.*.txt + STS.gs.*.txt, SICK-R as SICK_test_annotated.txt).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transenc.errors import InputError, TransencError
from transenc.pairset import PairSet, PairSetBuilder
from transenc.readers import (STANDARD_INPUT, PairReader, Problems, is_stream, not_a_number, pair_set, read_pairs,
                              score_problem, text_lines, text_problem)


def spearman100(predicted: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr  # here: scipy.stats takes seconds to import, and only eval and train need it

    if len(predicted) < 2:
        return float("nan")
    return float(spearmanr(predicted, gold).statistic * 100)


NO_VALUE = "n/a (all scores equal)"  # Spearman of a model that scores every pair alike


def ranked(score: float) -> float:
    """A dev figure as choices compare it: one without a value (NaN: Spearman of a model that scores
    every pair alike, a collapsed one) ranks below every other, never above (NaN > x is always False)."""
    return -np.inf if np.isnan(score) else score


def figure(score: float, sign: str = "") -> str:
    """A figure as the run's lines, report and model cards print it: two decimals (`sign` "+": signed),
    or NO_VALUE."""
    return NO_VALUE if np.isnan(score) else f"{score:{sign}.2f}"


def auc(predicted: np.ndarray, gold: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic: the chance that a random positive pair scores above a
    random negative one, ties counting one half (average ranks)."""
    gold = np.asarray(gold)
    positive = gold == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(predicted, dtype=np.float64))  # ties get their average rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


METRICS = ("spearman", "auc", "auto")


def is_binary(gold: np.ndarray) -> bool:
    return bool(np.isin(gold, (0, 1)).all())


def resolve_metric(metric: str, gold: np.ndarray, where: str | Path) -> str:
    """`auto`: AUC when every gold label is 0 or 1, else Spearman. AUC on graded labels is an error."""
    if metric not in METRICS:
        raise TransencError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "auto":
        metric = "auc" if is_binary(gold) and len(np.unique(gold)) == 2 else "spearman"
    if metric == "auc":
        if not is_binary(gold):
            bad = int(np.flatnonzero(~np.isin(gold, (0, 1)))[0])
            raise InputError(where, 0, f"--metric auc needs 0/1 gold labels; pair {bad + 1} has {gold[bad]:g}")
        if len(np.unique(gold)) < 2:
            raise InputError(where, 0, "--metric auc needs both 0 and 1 gold labels")
    elif len(np.unique(gold)) < 2:  # a rank correlation with a constant is undefined (NaN)
        raise InputError(where, 0, f"Spearman needs at least two different gold scores; every pair here has "
                                   f"{gold[0]:g}" if len(gold) else "no labeled pairs")
    return metric


def score100(metric: str, predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman x 100 or AUC x 100: one scale, so scores of several dev sets can be averaged."""
    return spearman100(predicted, gold) if metric == "spearman" else auc(predicted, gold) * 100


def row_scorer(metric: str, gold: np.ndarray):
    """score100 of every row of a (draws, pairs) array of predictions against the same rows of `gold`
    (the bootstrap's resampled sets), the gold side's ranks computed once for every model scored."""
    from scipy.stats import rankdata

    if metric == "spearman":
        g = rankdata(gold, axis=1)  # ties get their average rank, as in spearman100 and auc
        g -= g.mean(1, keepdims=True)
        g_norm = np.sqrt((g * g).sum(1))

        def score(predicted):
            p = rankdata(predicted, axis=1)
            p -= p.mean(1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):  # a constant row: NaN, as score100 gives
                return 100 * (p * g).sum(1) / (np.sqrt((p * p).sum(1)) * g_norm)
        return score
    positive = gold == 1
    n_pos = positive.sum(1)
    n_neg = gold.shape[1] - n_pos

    def score(predicted):
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100 * ((rankdata(predicted, axis=1) * positive).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return score


def paired_draws(sets: list[tuple[str, np.ndarray]], before: list[np.ndarray], candidates: list[list[np.ndarray]],
                 resamples: int = 2000, seed: int = 0, block: int = 250) -> np.ndarray:
    """Bootstrap draws of the mean over the sets of score100(candidate) - score100(before), one row per
    candidate (each a list of per-set scores, like `before`): each draw resamples every set's pairs
    once and scores `before` and every candidate on the same resampled pairs (paired)."""
    rng = np.random.default_rng(seed)
    draws = np.zeros((len(candidates), resamples))
    for i, ((metric, gold), b) in enumerate(zip(sets, before)):
        for first in range(0, resamples, block):  # a block of draws at a time: bounded memory for large sets
            rows = rng.integers(0, len(gold), (min(block, resamples - first), len(gold)))
            score = row_scorer(metric, gold[rows])
            base = score(b[rows])
            for c, candidate in enumerate(candidates):
                draws[c, first:first + len(rows)] += score(candidate[i][rows]) - base
    return draws / len(sets)


def paired_gain(sets: list[tuple[str, np.ndarray]], before: list[np.ndarray], after: list[np.ndarray],
                others: list[list[np.ndarray]] = (), bonferroni: int = 1, resamples: int = 2000,
                seed: int = 0) -> tuple[float, float]:
    """How much `after`'s scores beat `before`'s on dev: (gain, its lower bound) of the mean over the
    sets of score100(after) - score100(before), by a paired bootstrap (paired_draws). Alone, the
    bound is the draws' 5th percentile. Where `after` was chosen on these same pairs among `others`
    too, the bound holds for every candidate at once (max-T, Westfall and Young): `after`'s gain
    plus the 5th percentile of each draw's lowest candidate deviation (draw minus that candidate's
    gain). Candidates that move together, as a fit's successive checks do, then cost little, and
    independent ones as much as Bonferroni. `bonferroni` = N instead divides the percentile by N, for
    a choice among N whose scores were not kept. A bound above 0 says the gain is more than dev's
    noise and than its choice (one-sided, 95%). Other candidates without a value (NaN: a check that
    scored every dev pair alike) could not have been chosen, and are left out."""
    candidates = [list(after), *others]
    gains = np.array([np.mean([score100(m, c, g) - score100(m, b, g) for (m, g), b, c in zip(sets, before, candidate)])
                      for candidate in candidates])
    chosen_from = [0] + [i for i in range(1, len(candidates)) if not np.isnan(gains[i])]
    candidates, gains = [candidates[i] for i in chosen_from], gains[chosen_from]
    draws = paired_draws(sets, before, candidates, resamples, seed)
    if len(candidates) == 1:
        return float(gains[0]), float(np.nanpercentile(draws[0], 5 / bonferroni))
    if bonferroni != 1:
        raise ValueError("a choice is corrected by its candidates' scores or by Bonferroni, not both")
    return float(gains[0]), float(gains[0] + np.nanpercentile(np.min(draws - gains[:, None], axis=0), 5))


def labeled_sets(specs: list[str]) -> dict[str, tuple[PairSet, str]]:
    """`[NAME=]FILE` specs -> {name: (pairs, metric)}; the name defaults to the file's stem, the metric
    is AUC for 0/1 labels and Spearman otherwise."""
    sets = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and not name and not Path(spec).exists():
            raise TransencError(f"{spec}: a file but no name before the '='")
        if not sep or not name or "/" in name or Path(spec).exists():
            name, path = default_set_name(Path(spec)), spec
        elif not path:
            raise TransencError(f"{spec}: a name but no file after the '='")
        if name in sets:
            raise TransencError(f"two evaluation sets are named '{name}'; name them apart with NAME=FILE")
        pairs = read_labeled(path)
        sets[name] = (pairs, resolve_metric("auto", pairs.labels, path))
    return sets


def default_set_name(path: Path) -> str:
    """A set's name when none is given: its file's stem; 'stdin' or 'stream' for what is read once
    (a process substitution's /dev/fd/63 would be named '63')."""
    if str(path) == STANDARD_INPUT:
        return "stdin"
    return "stream" if is_stream(path) else path.stem


def find_sets(data: str | Path, metric: str = "auto") -> dict[str, PairSet]:
    """Every labeled set in `data`, by name: a labeled pairs file (its stem; read_labeled checks its
    labels for `metric`), or a folder of STS sets."""
    root = Path(data)
    if root.is_file() or is_stream(root):
        return {default_set_name(root): read_labeled(root, metric)}
    if not root.is_dir():
        raise InputError(root, 0, "no such file or directory")
    sets = {name: pairs for name, _, read in _folder_sets(root) if (pairs := read()) is not None}
    if not sets:
        raise InputError(root, 0, "no STS-B csv files (sts-dev.csv, sts-test.csv) or SentEval STS/SICK files found")
    return sets


def data_files(data: str | Path) -> list[Path]:
    """The files find_sets(data) reads: what an output must not replace."""
    root = Path(data)
    return [path for _, files, _ in _folder_sets(root) for path in files] if root.is_dir() else [root]


def _folder_sets(root: Path) -> list[tuple[str, list[Path], Callable[[], PairSet | None]]]:
    """Each STS set a folder may hold: its name, the files it is read from, and its reader (None where
    a SentEval folder holds no scored pair)."""
    found = []
    for split in ("dev", "test"):
        # in the folder or below, as the SentEval sets are (`transenc data --out data` puts them in
        # data/stsbenchmark/): the shallowest copy, as SentEval's own tree holds one in
        # downstream/STS/STSBenchmark/ beside its other sets
        paths = sorted((len(p.relative_to(root).parts), p) for p in root.rglob(f"sts-{split}.csv") if p.is_file())
        nearest = [path for depth, path in paths if depth == paths[0][0]]
        if len(nearest) > 1:
            raise InputError(root, 0, f"holds {len(nearest)} STS-B {split} sets at one depth "
                                      f"({', '.join(map(str, nearest))}): pass the folder of one")
        found += [(f"sts-b-{split}", nearest, functools.partial(_sts_b, nearest[0]))] if nearest else []
    for folder in sorted(p for p in root.rglob("STS1[2-6]*") if p.is_dir()):
        found.append((folder.name.lower(), sorted(p for p in folder.glob("STS.*.txt") if p.is_file()),
                      functools.partial(_senteval_sts, folder)))
    sick = next(root.rglob("SICK_test_annotated.txt"), None)
    if sick is not None:
        found.append(("sick-r", [sick], functools.partial(_sick, sick)))
    return found


def _sts_b(path: Path) -> PairSet:
    return read_pairs(path, fmt="sts")[0]


def _senteval_sts(folder: Path) -> PairSet | None:
    """The pairs of each STS.input.X.txt that its STS.gs.X.txt scores, line N by line N: a blank gold
    line is an unlabeled pair (real SentEval gold files have them), not scored, and an input without a
    gold file is skipped."""
    builder = PairSetBuilder()
    for inputs in sorted(folder.glob("STS.input.*.txt")):
        gold_path = inputs.with_name(inputs.name.replace("STS.input.", "STS.gs."))
        if not gold_path.is_file():
            continue
        gold = {number: _gold_score(gold_path, number, text)
                for number, text in text_lines(gold_path, Problems(gold_path, "raise"))}
        for number, text in text_lines(inputs, Problems(inputs, "raise")):
            if number in gold:
                fields = text.split("\t")
                _refuse(inputs, number, text_problem(*fields[:2]) if len(fields) >= 2
                        else "expected 2 tab-separated sentences")
                builder.add(fields[0], fields[1], gold[number])
    return builder.build() if len(builder) else None


def _sick(path: Path) -> PairSet:
    builder = PairSetBuilder()
    for number, text in text_lines(path, Problems(path, "raise")):
        fields = text.split("\t")
        if number == 1 and fields[0] == "pair_ID":
            continue
        _refuse(path, number, text_problem(*fields[1:3]) if len(fields) >= 4
                else "expected pair_ID, sentence_A, sentence_B, relatedness_score")
        builder.add(fields[1], fields[2], _gold_score(path, number, fields[3]))
    return builder.build()


def _gold_score(path: Path, number: int, text: str) -> float:
    """A SentEval gold score, held to the pair readers' rules and words: a NaN would score the set NaN
    and make --json write invalid JSON."""
    try:
        score = float(text)
    except ValueError:
        raise InputError(path, number, not_a_number(text)) from None
    _refuse(path, number, score_problem(score))
    return score


def _refuse(path: Path, number: int, problem: str | None) -> None:
    """The SentEval files' problems are the pair readers' (text_problem), reported as theirs are."""
    if problem:
        raise InputError(path, number, problem)


def read_labeled(path: str | Path, metric: str = "auto") -> PairSet:
    """A pairs file in which every pair carries a gold score or 0/1 label; else the error names the
    first line without one (often a header line, of names a tsv header does not use). For metric
    "auc" every label must be 0 or 1, and the error names the first line whose label is not."""
    reader = PairReader(path)
    pairs = pair_set(reader)
    if pairs.labels is None:
        number = next(number for number, _, _, label in reader.numbered() if label is None)
        fmt = reader.format()
        header = (" (a header line? a tsv header names its columns sentence1, sentence2)"
                  if number == 1 and fmt == "tsv" else "")
        raise InputError(path, number, f"no gold score{header}: a set to evaluate on needs {_GOLD_HOLDER[fmt]}")
    if metric == "auc" and not is_binary(pairs.labels):
        number, label = next((number, label) for number, _, _, label in reader.numbered() if label not in (0, 1))
        raise InputError(path, number, f"--metric auc needs 0/1 gold labels; this pair's is {label:g}")
    return pairs


_GOLD_HOLDER = {"tsv": "a number in every line's third field", "bars": "a number in every line's third field",
                "csv": "a number in every row's score or label column",
                "jsonl": 'a numeric "score" or "label" on every line', "sts": "a number in every line's score field"}
