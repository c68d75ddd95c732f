"""The Python API, for notebooks: the CLI's verbs as functions (the CLI is a thin layer over them).

    import transenc
    pairs = transenc.read_pairs("pairs.tsv")                  # a PairSet
    cosines = transenc.label(pairs)                           # np.ndarray, one score per pair
    mined = transenc.mine(sentences, k=5)                     # [(s1, s2, cosine), ...]
    run = transenc.train(mined, "runs/x", dev="sts-dev.csv")  # a Run: metrics, best model folders

Wherever pairs are taken, a path, a PairSet or a list of (s1, s2) or (s1, s2, score) tuples will do.
torch and transformers are imported inside the functions, so `import transenc` stays light.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from transenc.bundled import DEMO_DEV, DEMO_PAIRS  # noqa: F401  (part of the API)
from transenc.errors import TransencError, cosine_problem, require_count
from transenc.pairset import PairSet, PairSetBuilder


def read_pairs(pairs, fmt: str | None = None, on_error: str = "raise") -> PairSet:
    """A pairs file (any format `transenc label` reads), a PairSet, or (s1, s2[, score]) tuples -> PairSet."""
    if isinstance(pairs, PairSet):
        return pairs
    if isinstance(pairs, (str, Path)):
        from transenc.readers import read_pairs as read_file

        result, skipped = read_file(pairs, fmt, on_error)
        if skipped:
            print(f"transenc: skipped {skipped} bad line(s) in {pairs}", file=sys.stderr)
        return result
    builder = PairSetBuilder()
    for i, row in enumerate(pairs, start=1):  # tuples, lists, rows of a numpy array of strings
        if (isinstance(row, (str, bytes)) or not hasattr(row, "__len__") or len(row) not in (2, 3)
                or not all(isinstance(s, str) and s.strip() for s in row[:2])):
            raise TransencError(f"pair {i}: expected (sentence1, sentence2) or (sentence1, sentence2, score) "
                                f"with non-empty sentences, got {str(row)[:80]}")
        builder.add(row[0], row[1], _score(row[2], i) if len(row) == 3 else None)
    if not len(builder):
        raise TransencError("no sentence pairs given")
    return builder.build()


def _score(value, i: int) -> float | None:
    """A tuple's third item: a finite number, or None for no score (as a file's empty column)."""
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise TransencError(f"pair {i}: score {value!r} is not a finite number")
    return score


def label(pairs, model=None, mode: str = "bi", device=None, batch_size: int | None = None,
          precision: str = "auto") -> "np.ndarray":  # noqa: F821
    """One score per pair, in input order: bi-encoder cosine, or cross-encoder score in [0, 1]."""
    from transenc.labeling import load_scorer, score
    from transenc.precision import check_precision

    require_count("batch_size", batch_size)
    check_precision(precision)
    pairs = read_pairs(pairs)
    return score(load_scorer(model, mode, device, precision), pairs, batch_size=batch_size, precision=precision)


def mine(sentences, k: int = 5, model=None, min_score: float | None = None, device=None,
         batch_size: int | None = None, precision: str = "auto", checkpoint=None) -> list[tuple[str, str, float]]:
    """Each unique sentence's k nearest neighbours by exact cosine, as unordered pairs (s1, s2, cosine),
    each once, no self-pairs. `sentences`: a list of strings or a file with one sentence per line.
    checkpoint: a transenc.mine_checkpoint.MineCheckpoint, which keeps the work as it is done and
    holds what a stopped run kept."""
    from transenc.readers import read_sentences

    require_count("k (neighbours per sentence)", k)
    require_count("batch_size", batch_size)
    problem = cosine_problem(min_score)
    if problem:
        raise TransencError(f"min_score {problem}")
    if isinstance(sentences, (str, Path)):
        sentences = read_sentences(sentences)  # a bad file stops here, before torch loads
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
