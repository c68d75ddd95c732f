"""Scoring pairs: cosine of a bi-encoder's embeddings, or a cross-encoder's sigmoid score."""
from __future__ import annotations

import numpy as np

from transenc import ops
from transenc.api import make_verb
from transenc.models import BiEncoder, CrossEncoder
from transenc.pairset import PairSet
from transenc.tokens import TokenCache

MODES = ("bi", "cross")


def bi_scores(encoder: BiEncoder, pairs: PairSet, cache: TokenCache | None = None, batch_size: int = 128,
              precision: str = "auto", show_progress: bool | None = None) -> np.ndarray:
    """Each unique sentence encoded once, then one fused cosine pass over the pair indices."""
    embeddings = encoder.encode(cache or pairs.sentences, batch_size, precision, show_progress)
    return ops.pair_cosine_indexed(embeddings, pairs.pairs).numpy()


def cross_scores(encoder: CrossEncoder, pairs: PairSet, cache: TokenCache | None = None, batch_size: int = 64,
                 precision: str = "auto", show_progress: bool | None = None) -> np.ndarray:
    return encoder.predict(cache or pairs.sentences, pairs.pairs, batch_size, precision, show_progress)


def load_scorer(model, mode: str, device=None):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    return BiEncoder.load(model, device) if mode == "bi" else CrossEncoder.load(model, device)


def score(encoder: BiEncoder | CrossEncoder, pairs: PairSet, **kwargs) -> np.ndarray:
    """bi_scores or cross_scores by the encoder's kind; options left as None take their defaults."""
    scorer = bi_scores if isinstance(encoder, BiEncoder) else cross_scores
    return scorer(encoder, pairs, **{k: v for k, v in kwargs.items() if v is not None})


make_verb(__name__)  # transenc.label(...) calls transenc.api.label
