"""STS evaluation: Spearman x 100 between model scores and gold scores.

Understands the STS-B csv layout (sts-dev.csv, sts-test.csv) and a SentEval-style folder
(STS12-16 as STS.input.*.txt + STS.gs.*.txt, SICK-R as SICK_test_annotated.txt).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transenc.errors import InputError
from transenc.pairset import PairSet, PairSetBuilder
from transenc.readers import read_pairs, text_lines, Problems


def spearman100(predicted: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr  # here: scipy.stats takes seconds to import, and only eval and train need it

    if len(predicted) < 2:
        return float("nan")
    return float(spearmanr(predicted, gold).statistic * 100)


def find_sets(data_dir: str | Path) -> dict[str, PairSet]:
    """Every labeled STS set under data_dir, by name."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(root, 0, "no such directory")
    sets = {}
    for split in ("dev", "test"):
        path = root / f"sts-{split}.csv"
        if path.is_file():
            sets[f"sts-b-{split}"] = read_pairs(path, fmt="sts")[0]
    for folder in sorted(p for p in root.rglob("STS1[2-6]*") if p.is_dir()):
        pairs = _senteval_sts(folder)
        if pairs is not None:
            sets[folder.name.lower()] = pairs
    sick = next(root.rglob("SICK_test_annotated.txt"), None)
    if sick is not None:
        sets["sick-r"] = _sick(sick)
    if not sets:
        raise InputError(root, 0, "no STS-B csv files (sts-dev.csv, sts-test.csv) or SentEval STS/SICK files found")
    return sets


def _senteval_sts(folder: Path) -> PairSet | None:
    builder = PairSetBuilder()
    for inputs in sorted(folder.glob("STS.input.*.txt")):
        gold_path = inputs.with_name(inputs.name.replace("STS.input.", "STS.gs."))
        if not gold_path.is_file():
            continue
        gold = gold_path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(inputs.read_text(encoding="utf-8").split("\n")):
            if i < len(gold) and gold[i].strip() and line.strip():  # unlabeled lines are not scored
                a, b = line.split("\t")[:2]
                builder.add(a, b, float(gold[i]))
    return builder.build() if len(builder) else None


def _sick(path: Path) -> PairSet:
    builder = PairSetBuilder()
    for number, text in text_lines(path, Problems(path, "raise")):
        fields = text.split("\t")
        if number == 1 and fields[0] == "pair_ID":
            continue
        if len(fields) < 4:
            raise InputError(path, number, "expected pair_ID, sentence_A, sentence_B, relatedness_score")
        builder.add(fields[1], fields[2], float(fields[3]))
    return builder.build()
