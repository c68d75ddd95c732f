"""Paths of the data that ships inside the package (the bottom layer: anything may use them)."""
from pathlib import Path

DATA = Path(__file__).parent / "data"
DEMO_PAIRS = DATA / "demo_pairs.tsv"  # the bundled unlabeled demo corpus
DEMO_DEV = DATA / "demo_dev.tsv"  # 246 hand-written pairs graded 0-5
