"""Scoring pairs: cosine of a bi-encoder's embeddings, or a cross-encoder's sigmoid score."""
from __future__ import annotations

import sys
from typing import Iterator

import numpy as np

from transenc import distributed, ops
from transenc.errors import TransencError
from transenc.kept_rows import KeptRows
from transenc.models import DEFAULT_MODEL, BiEncoder, CrossEncoder, has_pair_head, resolve_device
from transenc.pairset import PairSet
from transenc.precision import check_precision, inference_precision
from transenc.progress import progress
from transenc.readers import CHUNK_PAIRS, PairChunk, PairReader
from transenc.tokens import TokenCache

MODES = ("bi", "cross")
BI_BATCH, CROSS_BATCH = 128, 64
# int8 keeps its activations in fp32 between matmuls and streams them through memory several times
# per layer: batches of ~32 pairs (~1,800 tokens, as the bi-encoder's 128 sentences) stay nearer the
# cache. MiniLM cross-encoder, STS-B's 8,567 pairs, Intel Xeon with AMX, two rounds: 453 and 498
# pairs/s at 32 against 435 and 457 at 64.
INT8_CROSS_BATCH = 32


def bi_scores(encoder: BiEncoder, pairs: PairSet, cache: TokenCache | None = None, batch_size: int = BI_BATCH,
              precision: str = "auto", show_progress: bool | None = None, group=None) -> np.ndarray:
    """Each unique sentence encoded once (by the group's ranks, each a share), then one fused cosine
    pass over the pair indices (in one process on a CPU the embeddings are a file in TMPDIR: encode's
    ScratchRows)."""
    embeddings = encoder.encode(cache or pairs.sentences, batch_size, precision, show_progress, group)
    return ops.pair_cosine_indexed(embeddings, pairs.pairs).numpy()


def cross_scores(encoder: CrossEncoder, pairs: PairSet, cache: TokenCache | None = None, batch_size: int | None = None,
                 precision: str = "auto", show_progress: bool | None = None, group=None) -> np.ndarray:
    """The cross-encoder's score of every pair (the group's ranks scoring a share each)."""
    if batch_size is None:
        batch_size = INT8_CROSS_BATCH if inference_precision(encoder.device, precision) == "int8" else CROSS_BATCH
    return encoder.predict(cache or pairs.sentences, pairs.pairs, batch_size, precision, show_progress, group)


def load_scorer(model, mode: str, device=None, precision: str = "auto"):
    """The model for `mode`, after the mode and the precision on this device are checked."""
    if mode not in MODES:
        raise TransencError(f"mode must be one of {MODES}, got {mode!r}")
    device = resolve_device(device)
    check_precision(precision, device)
    if mode == "bi":
        encoder = BiEncoder.load(model, device, inference=True)
        if has_pair_head(encoder.model.config):
            print(f"transenc: warning: {model} is a cross-encoder (it has a pair head): its embeddings' cosines "
                  "are not what it was trained to score; score with --mode cross", file=sys.stderr)
        return encoder
    encoder = CrossEncoder.load(model, device, inference=True)
    if encoder.fresh_head:
        print(f"transenc: warning: {model or DEFAULT_MODEL} has no cross-encoder head (it is a bi-encoder or a plain "
              "encoder): its scores come from a random head; score with --mode bi, or train a cross-encoder "
              "(transenc train)", file=sys.stderr)
    return encoder


def score(encoder: BiEncoder | CrossEncoder, pairs: PairSet, of: str | None = None, **kwargs) -> np.ndarray:
    """bi_scores or cross_scores by the encoder's kind, after a note of how many sentences or pairs
    its max_length cuts (`of`: the set's name, for that note); options left as None take their defaults."""
    cache = encoder.token_cache(pairs.sentences)
    if isinstance(encoder, BiEncoder):
        scorer, rows = bi_scores, np.arange(len(cache))
    else:
        scorer, rows = cross_scores, pairs.pairs
    note_cut(encoder.rows_cut(cache, rows), len(rows), encoder, of)
    return scorer(encoder, pairs, cache, **{k: v for k, v in kwargs.items() if v is not None})


def stream_scores(encoder: BiEncoder | CrossEncoder, reader: PairReader, chunk_pairs: int = CHUNK_PAIRS,
                  batch_size: int | None = None, precision: str = "auto", group=None,
                  first_pass=None, skip: int = 0, kept: KeptRows | None = None) -> Iterator[tuple[PairChunk, np.ndarray]]:
    """(chunk, scores) chunk by chunk, in input order, for a file of any length.

    bi: a first pass interns the unique sentences (first-appearance order, as read_pairs numbers
    them) and encodes each once; the chunks of pair ids are then scored against that table: kept
    from the first pass (up to readers.KEEP_IDS_PAIRS pairs), else read again. The scores equal bi_scores'
    on the whole file bit for bit. cross: the first pass counts the pairs (for a bar over the whole
    file; a bad line stops the run before any scoring), then each chunk has a sentence table of its
    own and is scored alone. With a process group the ranks share the encoding (bi) or each chunk's
    pairs (cross); only the group's rank 0 gets chunks to write. `first_pass`: a future of
    reader.first_pass (with the sentences in bi mode), started while the model loads. `skip`: the
    first pairs, whole chunks of them (a resumed output's), are read but neither scored nor yielded.
    `kept` (bi, one process): a KeptRows, where the embeddings are kept as they are encoded and a
    stopped run's are taken up (transenc.kept_rows); else encode's ScratchRows.
    """
    if isinstance(encoder, BiEncoder):
        _, table, chunks = first_pass.result() if first_pass else reader.first_pass(chunk_pairs, sentences=True)
        texts = table.texts()
        embeddings = kept.complete(len(texts)) if kept else None
        if embeddings is None:
            embeddings = encode_texts(encoder, texts, batch_size or BI_BATCH, precision, group, kept)
        if not distributed.is_main(group):
            return  # the cosine pass is cheap next to reading the file again: rank 0 alone does it
        for chunk in _after(chunks if chunks is not None else reader.chunks(chunk_pairs, table), skip):
            yield chunk, ops.pair_cosine_indexed(embeddings, chunk.ids).numpy()
    else:
        # one bar over the whole file (a chunk's pairs take minutes on a CPU); under a group a rank
        # scores a share of each chunk, so the bar goes on by whole chunks
        total = (first_pass.result() if first_pass else reader.first_pass(chunk_pairs, sentences=False)).pairs
        sharded, cut, scored = distributed.active(group), 0, 0
        with progress(total, "label", "pairs", None if distributed.is_main(group) else False, skip) as bar:
            for chunk in _after(reader.chunks(chunk_pairs), skip):
                texts = chunk.table.texts()
                cache = encoder.token_cache(texts)
                cut, scored = cut + encoder.rows_cut(cache, chunk.ids), scored + len(chunk.ids)
                scores = cross_scores(encoder, PairSet(texts, chunk.ids), cache, batch_size=batch_size,
                                      precision=precision, show_progress=False if sharded else bar, group=group)
                if sharded:
                    bar.update(len(chunk.ids))
                if distributed.is_main(group):
                    yield chunk, scores
        if distributed.is_main(group):
            note_cut(cut, scored, encoder)


def encode_texts(encoder: BiEncoder, texts: list[str], batch_size: int, precision: str, group=None,
                 kept: KeptRows | None = None):
    """encoder.encode(texts), after a note of how many of them its max_length cuts (rank 0's)."""
    cache = encoder.token_cache(texts)
    if distributed.is_main(group):
        note_cut(encoder.rows_cut(cache, np.arange(len(cache))), len(cache), encoder)
    return encoder.encode(cache, batch_size, precision, group=group, kept=kept)


def note_cut(cut: int, rows: int, encoder: BiEncoder | CrossEncoder, of: str | None = None) -> None:
    """Says how many of `rows` sentences (a cross-encoder's: pairs) the model's max_length cuts,
    which no score shows."""
    if cut:
        length, bi = encoder.max_length, isinstance(encoder, BiEncoder)
        how = f"scored on its first {length}" if bi else f"cut to {length}, its longer sentence first"
        print(f"transenc: note: {f'{of}: ' if of else ''}{cut:,} of {rows:,} {'sentences' if bi else 'pairs'} are "
              f"longer than the model's {length} tokens: each is {how}", file=sys.stderr)


def _after(chunks: Iterator[PairChunk], skip: int) -> Iterator[PairChunk]:
    """The chunks past the first `skip` pairs, which must end at a chunk's end."""
    for chunk in chunks:
        if skip <= 0:
            yield chunk
        else:
            skip -= len(chunk.ids)
            if skip < 0:
                raise TransencError("the pairs to skip end inside a chunk: resume with the stopped run's "
                                    "--chunk-pairs")
    if skip > 0:
        raise TransencError(f"the input has {skip} pairs fewer than the output to resume already holds")
