"""Real text for the checks against transformers' tokenizers and sentence-transformers, in two
corpora: `demo_mix`, built from the package's demo sentences, runs everywhere, CI included; STS-B
(never committed: local_data) runs where the workplace keeps it. The demo sentences alone are short
(8 to 19 tokens): demo_mix adds runs of them joined, long enough that every cut length truncates
some rows, and awkward texts."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from local_data import sts_dir
from transenc.bundled import DEMO_DEV, DEMO_PAIRS
from transenc.readers import read_pairs

# Each a TSV field as it stands (no tab, newline or NUL): the CLI tests write them to pair files.
AWKWARD = ["Café naïve RÉSUMÉ", "e\u0301 combining", "我爱北京天安门 and 東京", "Hello,世界!",
           "[CLS] literal [SEP] tokens [MASK] [PAD] [UNK]", "[cls] lower [sep]", "🙂👍🏽 emoji", "zero\u200bwidth",
           "3.14e10 $5,000 50% #tag @user https://example.com/a?b=c", "  spaced   out  ", "x" * 300,
           " ".join(["antidisestablishmentarianism"] * 200), "ß ǅ ﬁ Ⅻ ①", "don't won't O'Neil's", "\u3000full width"]
# Control characters a tokenizer must clean the same way; no reader passes a NUL or a tab inside a field.
CONTROL = ["a\tb\x00c\x7f d"]


def demo_sentences() -> list[str]:
    found = []
    for path in (DEMO_PAIRS, DEMO_DEV):
        found += read_pairs(path)[0].sentences
    return found


def demo_mix(n_pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    """n_pairs pairs drawn from about 14,000 texts, as many unique sentences as STS-B holds: the
    demo sentences; 30 times as many spliced (one's first words, another's last), as short and as
    varied as a real pair set's; the awkward texts; and twice as many runs of 2 to 30 demo
    sentences joined (about 20 to 400 tokens), so that some pairs have both sides long."""
    rng = random.Random(seed)
    sentences = demo_sentences()
    words = [s.split() for s in sentences]
    spliced = [" ".join(a[:rng.randint(1, len(a))] + b[rng.randint(0, len(b) - 1):])
               for a, b in (rng.sample(words, 2) for _ in range(30 * len(sentences)))]
    joined = [" ".join(rng.choices(sentences, k=rng.randint(2, 30))) for _ in range(2 * len(sentences))]
    texts = sentences + spliced + AWKWARD + joined
    return [(rng.choice(texts), rng.choice(texts)) for _ in range(n_pairs)]


def sts_b_folder() -> Path:
    """STS-B's folder; skips the test without it."""
    folder = sts_dir()
    if folder is None:
        pytest.skip("STS-B not found (../shared/data/stsbenchmark or TRANSENC_STS_DIR)")
    return folder


def sts_b(splits: tuple[str, ...] = ("train", "dev", "test")) -> list[tuple[str, str]]:
    """Every pair of STS-B's splits, in file order; skips the test without the data."""
    folder = sts_b_folder()
    pairs = []
    for split in splits:
        # Tab-separated with stray quotes and extra fields on some lines: plain split, no csv quoting.
        for line in (folder / f"sts-{split}.csv").read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            pairs.append((fields[5], fields[6]))
    return pairs


def indexed(pairs: list[tuple[str, str]]) -> tuple[list[str], np.ndarray]:
    """(unique sentences, sorted; int32 pair indices into them)."""
    sentences = sorted({s for pair in pairs for s in pair})
    index = {s: i for i, s in enumerate(sentences)}
    return sentences, np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int32)
