"""Training and export lengths in tokens. The paper's 32 / 64 fit STS's short sentences and cut
news pairs short (MRPC: MiniLM cut to 32 tokens scores 72.05 AUC on its test split, 73.62 at its own
256), so a run trains at lengths taken from its pairs and exports at the start model's own length:
training rows are cut for speed, the models people use are not."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transenc.errors import TransencError

WHOLE = 0.99  # the share of sentences (bi) or pairs (cross) a training length keeps whole
MULTIPLE = 16  # lengths are rounded up to this: fewer shapes, and the GPU policy's width multiple
# models whose position ids start after the padding index (RoBERTa's family): two positions fewer
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "mpnet": 2, "longformer": 2}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def positions(model: Path) -> int:
    """The most tokens the model can read: its position table (or its tokenizer's limit)."""
    config = _json(model / "config.json")
    limit = _json(model / "tokenizer_config.json").get("model_max_length") or 512
    if "max_position_embeddings" in config:
        limit = min(limit, config["max_position_embeddings"] - POSITION_OFFSET.get(config.get("model_type"), 0))
    return int(min(limit, 1 << 20))  # tokenizers without a limit say ~1e30


def own_length(model: Path) -> int:
    """The length the start model is used at: its sentence-transformers max_seq_length, else what it
    can read (at most 512)."""
    saved = _json(model / "sentence_bert_config.json").get("max_seq_length")
    return int(min(saved or 512, positions(model)))


def covering_length(row_lengths: np.ndarray, cap: int, whole: float = WHOLE, multiple: int = MULTIPLE) -> int:
    """The smallest multiple of `multiple` that keeps at least `whole` of the rows (lengths with their
    special tokens) whole, at most `cap`."""
    if not len(row_lengths):
        return min(multiple, cap)
    need = int(np.sort(row_lengths)[math.ceil(whole * len(row_lengths)) - 1])
    return int(min(math.ceil(need / multiple) * multiple, cap))


def share_whole(row_lengths: np.ndarray, length: int) -> float:
    return float((row_lengths <= length).mean()) if len(row_lengths) else 1.0


@dataclass(frozen=True)
class Lengths:
    """One start model's lengths: training rows are cut to bi / cross; models are scored and saved at export."""

    bi: int
    cross: int
    bi_export: int
    cross_export: int
    why: str  # one line for the run's first lines

    def record(self) -> dict:
        return asdict(self)


def check_asked(asked: tuple[int, int] | None, model: Path) -> None:
    """--max-length within what the model reads, checked before any model loads."""
    if asked and max(asked) > positions(model):
        raise TransencError(f"--max-length {','.join(map(str, asked))}: {model} reads at most "
                            f"{positions(model)} tokens")


def choose(model: Path, cache, pairs: np.ndarray, asked: tuple[int, int] | None, fixed: tuple[int | None, int | None]
           ) -> Lengths:
    """Model's lengths on a pair set: `asked` (--max-length) for training and export; else for each
    encoder the recipe's `fixed` (bi, cross) length or, where it has none, the data's (see
    covering_length), capped by the start model's own length, which the exports keep."""
    sentences, rows = cache.sentence_row_lengths(), cache.pair_row_lengths(pairs)
    if asked:
        bi, cross = asked
        return Lengths(bi, cross, bi, cross, f"training and export at --max-length {bi},{cross}: "
                                             f"{_kept(sentences, rows, bi, cross)}")
    own = own_length(model)
    bi = min(fixed[0], own) if fixed[0] else covering_length(sentences, own)
    cross = min(fixed[1], own) if fixed[1] else covering_length(rows, own)
    rule = f"the shortest multiples of {MULTIPLE} that keep {WHOLE:.0%} whole (at most {own})"
    if all(fixed):
        how = "the recipe's lengths"
    elif any(fixed):
        how = f"the recipe's {'bi' if fixed[0] else 'cross'}-encoder length, the other from the data ({rule})"
    else:
        how = rule
    return Lengths(bi, cross, own, own, f"training at {how}: {_kept(sentences, rows, bi, cross)}; "
                                        f"exported at the start model's {own}")


def _kept(sentences: np.ndarray, rows: np.ndarray, bi: int, cross: int) -> str:
    return (f"bi-encoder {bi} tokens ({share_whole(sentences, bi):.1%} of {len(sentences):,} sentences whole), "
            f"cross-encoder {cross} ({share_whole(rows, cross):.1%} of {len(rows):,} pairs whole)")
