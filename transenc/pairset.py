"""PairSet: the table every stage works on.

Unique sentences are stored once; pairs are int32[N, 2] indices into them, in input order.
A sentence therefore is encoded and tokenized once, however many pairs it appears in.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from transenc._C import SentenceTable


@dataclass
class PairSet:
    sentences: list[str]
    pairs: np.ndarray  # int32 [N, 2]
    labels: np.ndarray | None = None  # float32 [N] when the input carried gold scores

    def __len__(self) -> int:
        return len(self.pairs)

    def pair_texts(self, i: int) -> tuple[str, str]:
        a, b = self.pairs[i]
        return self.sentences[a], self.sentences[b]

    def head(self, n: int) -> "PairSet":
        """The first n pairs with only the sentences they use, so nothing else is tokenized or encoded."""
        pairs = self.pairs[:n]
        used, renumbered = np.unique(pairs, return_inverse=True)
        labels = None if self.labels is None else self.labels[:n]
        return PairSet([self.sentences[i] for i in used], renumbered.reshape(pairs.shape).astype(np.int32), labels)

    def both_orders(self) -> np.ndarray:
        """Pairs followed by the same pairs swapped: cross-encoders train on both orders."""
        return np.concatenate([self.pairs, self.pairs[:, ::-1]]).astype(np.int32)


class PairSetBuilder:
    """Gathers pairs given one by one (tuples, SentEval and SICK files) without a Python object per
    pair, their sentences interned in the engine's SentenceTable, as the pairs-file readers do."""

    def __init__(self):
        self._table = SentenceTable()
        self._flat = array("i")
        self._labels = array("f")
        self._all_labeled = True

    def add(self, a: str, b: str, label: float | None = None) -> None:
        self._flat.append(self._table.intern(a))
        self._flat.append(self._table.intern(b))
        if label is None:
            self._all_labeled = False
        else:
            self._labels.append(label)

    def __len__(self) -> int:
        return len(self._flat) // 2

    def build(self) -> PairSet:
        pairs = np.frombuffer(self._flat, dtype=np.int32).reshape(-1, 2).copy()
        labels = None
        if self._all_labeled and len(pairs):
            labels = np.frombuffer(self._labels, dtype=np.float32).copy()
        return PairSet(self._table.texts(), pairs, labels)
