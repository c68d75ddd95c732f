"""Mining sentence pairs: each sentence's nearest neighbours by embedding cosine.

`mine_pairs` works on an embedding table. The verb (transenc.api.mine, `transenc mine`) puts it
together with readers.read_sentences: sentences -> embeddings -> pairs.
"""
from __future__ import annotations

import numpy as np
import torch

from transenc import ops
from transenc.mine_checkpoint import MineCheckpoint
from transenc.progress import progress


# Rows asked per top-k call: a million sentences take about an hour on two cores (100k x 384 in 35 s
# on a Zen 4 EPYC), and the calls let a bar show it. On those 100k, blocks of 8,192 ran 35.2 / 35.9 s
# against one call's 35.4 / 35.4 (alternating), so the blocks cost nothing measurable.
QUERY_BLOCK = 8192


def mine_pairs(embeddings: torch.Tensor, k: int, min_score: float | None = None,
               show_progress: bool | None = None, checkpoint: MineCheckpoint | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every row, as unordered pairs.

    Returns (pairs int32[M, 2] with pairs[:, 0] < pairs[:, 1], scores float32[M]): each pair
    once, no self pairs, ordered by the first query row that found it, then by its rank there;
    pairs scoring below min_score are dropped. With a checkpoint, the neighbour lists go on from
    its kept rows and are kept as they are found.
    """
    n = embeddings.shape[0]
    k = min(k, max(n - 1, 1))  # no row has more others: a larger k would only allocate n x k lists
    scores, ids = nearest_others(embeddings, k, show_progress, checkpoint)
    scores, ids = scores.reshape(-1), ids.reshape(-1)  # query, then rank
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    keep = ids >= 0
    if min_score is not None:
        keep &= scores >= min_score
    rows, ids, scores = rows[keep], ids[keep], scores[keep]
    lo, hi = np.minimum(rows, ids), np.maximum(rows, ids)
    _, first = np.unique(lo * n + hi, return_index=True)
    first.sort()  # back to query-then-rank order
    pairs = np.stack([lo[first], hi[first]], axis=1).astype(np.int32)
    return pairs, scores[first].astype(np.float32)


def nearest_others(embeddings: torch.Tensor, k: int, show_progress: bool | None = None,
                   checkpoint: MineCheckpoint | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ops.cosine_topk(embeddings, embeddings, k, exclude_self=True) as numpy arrays, asked QUERY_BLOCK
    rows at a time: a bar follows it, and a checkpoint keeps each block (the same lists, ties
    included)."""
    n = embeddings.shape[0]
    if checkpoint is None:
        scores, ids, start = np.empty((n, k), np.float32), np.empty((n, k), np.int64), 0
    else:
        (scores, ids), start = checkpoint.neighbour_lists(n, k), checkpoint.rows
    with progress(n, "mine", "sentences", show_progress, initial=start) as bar:
        for start in range(start, n, QUERY_BLOCK):
            block_scores, block_ids = ops.cosine_topk(embeddings[start:start + QUERY_BLOCK], embeddings, k,
                                                      exclude_self=True, first_query_id=start)
            end = start + len(block_ids)
            scores[start:end], ids[start:end] = block_scores.cpu().numpy(), block_ids.cpu().numpy()
            if checkpoint is not None:
                checkpoint.done(end)
            bar.update(end - start)
    return scores, ids
