"""Where this workplace keeps what is never committed, for the tests and the benchmarks alike:
STS-B in ../shared/data/stsbenchmark beside the repository (TRANSENC_STS_DIR overrides), and
all-mpnet-base-v2 in models/, where `bash scripts/get_mpnet.sh` puts it (TRANSENC_MPNET_DIR overrides)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sts_dir() -> Path | None:
    """The STS-B folder (sts-train.csv, sts-dev.csv, sts-test.csv), or None."""
    for folder in (os.environ.get("TRANSENC_STS_DIR"), REPO.parent / "shared" / "data" / "stsbenchmark"):
        if folder and all((Path(folder) / f"sts-{split}.csv").is_file() for split in ("train", "dev", "test")):
            return Path(folder)
    return None


def mpnet_dir() -> Path | None:
    """all-mpnet-base-v2's folder, or None."""
    for folder in (os.environ.get("TRANSENC_MPNET_DIR"), REPO / "models" / "all-mpnet-base-v2"):
        if folder and (Path(folder) / "config.json").is_file():
            return Path(folder)
    return None
