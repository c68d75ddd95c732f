"""The Python API, for notebooks: the CLI's verbs as functions (the CLI is a thin layer over them).

    import transenc
    pairs = transenc.read_pairs("pairs.tsv")                  # a PairSet
    cosines = transenc.label(pairs)                           # np.ndarray, one score per pair
    scores = transenc.evaluate("sts-dev.csv")                 # {"sts-dev": Spearman x 100}
    mined = transenc.mine(sentences, k=5)                     # [(s1, s2, cosine), ...]
    run = transenc.train(mined, "runs/x", dev="sts-dev.csv")  # a Run: metrics, best model folders

Wherever pairs are taken (to label, evaluate or train on), a path, a PairSet or a list of (s1, s2)
or (s1, s2, score) tuples will do; models, and train's dev and test sets, are named by path.
torch and transformers are imported inside the functions, so `import transenc` stays light.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transenc.bundled import DEMO_DEV, DEMO_PAIRS  # noqa: F401  (part of the API)
from transenc.errors import TransencError, cosine_problem, require_count
from transenc.pairset import PairSet, PairSetBuilder


def read_pairs(pairs, fmt: str | None = None, on_error: str = "raise") -> PairSet:
    """A pairs file (any format `transenc label` reads), a PairSet, or (s1, s2[, score]) tuples -> PairSet.
    on_error="skip" skips bad lines or tuples (their count goes to stderr) where "raise" stops at the first."""
    return _read_pairs(pairs, fmt, on_error)[0]


def _read_pairs(pairs, fmt: str | None, on_error: str) -> tuple[PairSet, int | None]:
    """read_pairs, and the number of the first tuple given without a score (None for a file or a
    PairSet): the pairs keep no scores where one has none, and evaluate names it."""
    if on_error not in ("raise", "skip"):
        raise TransencError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if isinstance(pairs, PairSet):
        return _checked_pair_set(pairs), None
    if isinstance(pairs, (str, Path)):
        from transenc.readers import read_pairs as read_file

        result, skipped = read_file(pairs, fmt, on_error)
        if skipped:
            print(f"transenc: skipped {skipped} bad line(s) in {pairs}", file=sys.stderr)
        return result, None
    if isinstance(pairs, (bytes, dict)) or not hasattr(pairs, "__iter__"):
        raise TransencError(f"pairs: expected a path, a PairSet or (sentence1, sentence2[, score]) tuples, "
                            f"got {type(pairs).__name__}")
    if isinstance(pairs, (set, frozenset)):  # score i belongs to pair i: a set has no i
        raise TransencError("pairs: a set has no order, and score i is pair i's: pass a list")
    builder, skipped, unscored = PairSetBuilder(), 0, None
    for i, row in enumerate(pairs, start=1):  # tuples, lists, rows of a numpy array of strings
        problem = _row_problem(row)
        if problem and on_error == "raise":
            raise TransencError(f"pair {i}: {problem}")
        if problem:
            skipped += 1
            continue
        scored = len(row) == 3 and row[2] is not None
        if unscored is None and not scored:
            unscored = i
        builder.add(row[0], row[1], float(row[2]) if scored else None)
    if skipped:
        print(f"transenc: skipped {skipped} bad pair(s)", file=sys.stderr)
    if not len(builder):
        raise TransencError("no sentence pairs given")
    return builder.build(), unscored


def _checked_pair_set(pairs: PairSet) -> PairSet:
    """A PairSet as given (built or changed by hand, perhaps), held to what the readers make of a file:
    a bad index or type here would be a traceback deep in the engine."""
    indices, n = pairs.pairs, len(pairs.sentences)
    if not (isinstance(indices, np.ndarray) and indices.ndim == 2 and indices.shape[1] == 2
            and np.issubdtype(indices.dtype, np.integer)):
        raise TransencError(f"PairSet.pairs must be an int array of shape (N, 2), got "
                            f"{getattr(indices, 'shape', type(indices).__name__)}")
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise TransencError(f"PairSet.pairs must index its {n} sentences (0 to {n - 1}); it holds {indices.min()} to "
                            f"{indices.max()}")
    from transenc.readers import first_text_problem

    found = first_text_problem(pairs.sentences)  # what a file's line and a tuple are held to
    if found:
        i, problem = found
        raise TransencError(f"PairSet.sentences[{i}]: {problem}: {str(pairs.sentences[i])[:80]!r}")
    if pairs.labels is not None and len(pairs.labels) != len(indices):
        raise TransencError(f"PairSet.labels holds {len(pairs.labels)} scores for {len(indices)} pairs")
    if indices.dtype != np.int32:  # the engine's pair indices
        pairs = PairSet(pairs.sentences, indices.astype(np.int32), pairs.labels)
    return pairs


def _row_problem(row) -> str | None:
    """Why a (s1, s2[, score]) tuple is refused, or None: what a file's line is refused for."""
    from transenc.readers import is_score, text_problem

    if isinstance(row, dict):  # a `datasets` row, say
        keys = ", ".join(map(str, row))[:60]
        return f"expected (sentence1, sentence2[, score]), got a dict (keys {keys}): pass the values"
    if isinstance(row, (str, bytes)) or not hasattr(row, "__len__") or len(row) not in (2, 3):
        return f"expected (sentence1, sentence2) or (sentence1, sentence2, score), got {str(row)[:80]}"
    for side, text in zip(("sentence1", "sentence2"), row[:2]):
        if not isinstance(text, str):  # None or NaN: a gap in a table, say
            return f"{side} is not a str but {type(text).__name__} ({str(text)[:40]}): {str(row)[:80]}"
    problem = text_problem(row[0], row[1])
    if problem:
        return f"{problem}: {str(row)[:80]}"
    if len(row) == 3 and row[2] is not None:
        try:
            score = float(row[2])
        except (TypeError, ValueError):
            score = math.nan
        if not is_score(score):
            return f"score {row[2]!r} is not a finite number"
    return None


def label(pairs, model=None, mode: str = "bi", device=None, batch_size: int | None = None,
          precision: str = "auto") -> "np.ndarray":  # noqa: F821
    """One score per pair, in input order: bi-encoder cosine, or cross-encoder score in [0, 1]."""
    from transenc.labeling import load_scorer, score
    from transenc.precision import check_precision

    batch_size = require_count("batch_size", batch_size)
    check_precision(precision)
    pairs = read_pairs(pairs)
    return score(load_scorer(model, mode, device, precision), pairs, batch_size=batch_size, precision=precision)


def evaluate(data, model=None, mode: str = "bi", metric: str = "auto", device=None, batch_size: int | None = None,
             precision: str = "auto", each=None) -> dict[str, float]:
    """{set name: Spearman x 100, or ROC AUC x 100} of the model's scores against the gold ones, as
    `transenc eval` gives them. data: a labeled pairs file, an STS-B folder or SentEval tree (each of
    its sets), or labeled pairs in memory (a PairSet or (s1, s2, score) tuples, named "pairs").
    metric: auto (AUC where every label is 0 or 1, else Spearman), spearman or auc.
    each: called with (name, metric, value) as each set is scored."""
    from transenc.labeling import load_scorer, score
    from transenc.metrics import find_sets, resolve_metric, score100
    from transenc.precision import check_precision

    batch_size = require_count("batch_size", batch_size)
    check_precision(precision)
    if each is not None and not callable(each):
        raise TransencError(f"each must be a function of (name, metric, value), got {type(each).__name__}")
    if isinstance(data, (str, Path)):
        sets = find_sets(data, metric)
        folder = Path(data).is_dir()  # its sets are named in what resolve_metric refuses
        where = {name: f"{data} ({name})" if folder else str(data) for name in sets}
    else:
        pairs, unscored = _read_pairs(data, None, "raise")
        sets, where = {"pairs": pairs}, {"pairs": "pairs"}
        if pairs.labels is None:
            first = f"pair {unscored} has none; " if unscored else ""
            raise TransencError(f"pairs: {first}every pair needs a gold score (s1, s2, score) to be evaluated")
    metrics = {name: resolve_metric(metric, pairs.labels, where[name]) for name, pairs in sets.items()}
    encoder = load_scorer(model, mode, device, precision)
    results = {}
    for name, pairs in sets.items():
        predicted = score(encoder, pairs, name, batch_size=batch_size, precision=precision)
        if metrics[name] == "spearman" and len(predicted) and (predicted == predicted[0]).all():
            raise TransencError(f"{where[name]}: the model gives every pair the same score ({predicted[0]:.6g}): "
                                "Spearman has no value (a collapsed model?)")
        results[name] = score100(metrics[name], predicted, pairs.labels)
        if each:
            each(name, metrics[name], results[name])
    return results


def mine(sentences, k: int = 5, model=None, min_score: float | None = None, device=None,
         batch_size: int | None = None, precision: str = "auto") -> list[tuple[str, str, float]]:
    """Each unique sentence's k nearest neighbours by exact cosine, as unordered pairs (s1, s2, cosine),
    each once, no self-pairs. `sentences`: a list of strings or a file with one sentence per line."""
    return mine_kept(sentences, k, model, min_score, device, batch_size, precision, checkpoint=None)


def mine_kept(sentences, k, model, min_score, device, batch_size, precision, checkpoint) -> list[tuple[str, str, float]]:
    """mine, keeping its work in `checkpoint` (a transenc.mine_checkpoint.MineCheckpoint: `transenc
    mine --out FILE`) as it is done, and taking up what a stopped run kept there. The checkpoint's
    settings are what says the work is these sentences' (the CLI's name the sentences file, its size
    and time): the count alone is checked here."""
    from transenc.readers import read_sentences

    if k is None:  # require_count's None is "the default", and k's is 5
        raise TransencError("k (neighbours per sentence) must be a whole number of at least 1, got None")
    k = require_count("k (neighbours per sentence)", k)
    batch_size = require_count("batch_size", batch_size)
    problem = cosine_problem(min_score)
    if problem:
        raise TransencError(f"min_score {problem}")
    min_score = None if min_score is None else float(min_score)
    if isinstance(sentences, str) and not Path(sentences).exists() and (" " in sentences or "\n" in sentences):
        raise TransencError(f"sentences: no file is named {sentences[:60]!r}: a str names a file of sentences, "
                            "one per line; pass the sentences themselves as a list")
    if isinstance(sentences, (str, Path)):
        sentences = read_sentences(sentences)  # a bad file stops here, before torch loads
    else:
        sentences = _checked_sentences(sentences)
    from transenc.labeling import encode_texts, load_scorer
    from transenc.mining import mine_pairs
    from transenc.models import resolve_device
    from transenc.precision import check_precision

    check_precision(precision, device)
    sentences = list(dict.fromkeys(sentences))  # unique, first-seen order
    if len(sentences) < 2:
        raise TransencError(f"mining needs at least two different sentences; got {len(sentences)}")
    # on a CPU the embeddings are out of the process's memory: in the checkpoint, else in TMPDIR (encode)
    kept = checkpoint.embeddings if checkpoint else None
    embeddings = kept.complete(len(sentences)) if kept else None
    if embeddings is None:
        encoder = load_scorer(model, "bi", device, precision)  # as label's: a cross-encoder is warned of
        embeddings = encode_texts(encoder, sentences, batch_size or 128, precision, kept=kept)
    device = resolve_device(device)
    if device.type == "cuda":
        embeddings = embeddings.to(device)  # ops.cosine_topk runs where the tensor lives
    pairs, scores = mine_pairs(embeddings, k, min_score, checkpoint=checkpoint)
    return [(sentences[i], sentences[j], s) for (i, j), s in zip(pairs.tolist(), scores.tolist())]


def _checked_sentences(sentences) -> list[str]:
    """A list of sentences as mine takes them: each a str that label and train would take in a pair."""
    if isinstance(sentences, (bytes, dict, PairSet)) or not hasattr(sentences, "__iter__"):
        hint = " (a PairSet's are its .sentences)" if isinstance(sentences, PairSet) else ""
        raise TransencError(f"sentences: expected a file or a list of strings{hint}, got {type(sentences).__name__}")
    from transenc.readers import first_text_problem

    sentences = list(sentences)
    found = first_text_problem(sentences)
    if found:
        i, problem = found
        raise TransencError(f"sentence {i + 1}: {problem}: {str(sentences[i])[:80]!r}")
    return sentences


@dataclass
class Run:
    """A finished `transenc train` folder."""
    out: Path
    metrics: dict  # metrics.json
    bi: list[Path]  # the best bi-encoder of each start model (sentence-transformers folders)
    cross: list[Path]  # the best cross-encoder of each start model
    report: Path | None  # report.html, when matplotlib was there to draw it

    @classmethod
    def load(cls, out: str | Path) -> "Run":
        from transenc.report import load_metrics

        out = Path(out)
        metrics = load_metrics(out)
        best = metrics.get("best_cycle", {})
        report = out / "report.html"
        return cls(out, metrics, [out / n for n in best if n.startswith("bi")],
                   [out / n for n in best if n.startswith("cross")], report if report.is_file() else None)


def train(pairs=None, out: str | Path = "runs/transenc", *, models=None, teachers=None, dev=None, test=None, recipe=None,
          cycles=None, patience=None, seed=None, device=None, precision=None, max_pairs=None, max_length=None,
          simcse=False, resume=False) -> Run:
    """Trans-Encoder cycles, as `transenc train` runs them; options left as None take its defaults.

    pairs: None (the bundled demo corpus, with the bundled demo dev set), a path, a PairSet or tuples;
    models: a model or a list of them (mutual distillation); teachers: frozen co-teachers (`--teacher`);
    dev/test: a path, `NAME=PATH`, or a list; max_length: training lengths, N or (bi, cross)."""
    from transenc.train_config import TrainConfig
    from transenc.training import Trainer

    if models is not None and not models:
        raise TransencError("models: name at least one model (or leave it None for the default)")
    given = dict(models=models, teachers=teachers, dev=dev, test=test, recipe=recipe, cycles=cycles, patience=patience,
                 seed=seed, device=device, precision=precision, max_pairs=max_pairs, max_length=max_length)
    if pairs is not None and not isinstance(pairs, (str, Path)):
        pairs = read_pairs(pairs)
    config = TrainConfig(out=out, pairs=pairs, simcse=simcse, resume=resume,
                         **{k: v for k, v in given.items() if v is not None})
    Trainer(config).train()
    return Run.load(out)
