"""What a stopped `transenc mine --out F` keeps for `--resume`, in the folder `.F.partial/` beside F:
the sentences' embeddings once encoded, and the neighbour lists of the query rows done so far. A
search among a million sentences runs for about an hour on two cores; stopped, it goes on from
its last block of queries instead of from the start."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from transenc.errors import OutputError, TransencError
from transenc.writers import write_files, writing

MINE_HINT = "rerun with --resume to go on after the neighbours already found"


class MineCheckpoint:
    """`rows`: the query rows whose neighbour lists are complete. Made with `resume` and the
    stopped run's `settings`, it holds what that run kept; otherwise it starts empty."""

    def __init__(self, out: str | Path, settings: dict, resume: bool):
        self.out = Path(out)
        self.folder = self.out.with_name(f".{self.out.name}.partial")
        self.settings = settings
        kept = self._kept() if resume else None
        self.resumed = kept is not None
        self.rows = kept["rows"] if kept else 0
        self._lists: tuple[np.ndarray, np.ndarray] | None = None
        if not kept:
            self.discard()

    def _kept(self) -> dict | None:
        try:
            kept = json.loads((self.folder / "record.json").read_text(encoding="utf-8"))
            complete = (self.folder / "embeddings.npy").is_file() and (
                kept["rows"] == 0 or all((self.folder / f"{name}.npy").is_file() for name in ("scores", "ids")))
            return kept if kept["settings"] == self.settings and complete else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def embeddings(self) -> torch.Tensor | None:
        """The stopped run's embeddings, or None."""
        return torch.from_numpy(np.load(self.folder / "embeddings.npy")) if self.resumed else None

    @property
    def kept(self) -> bool:
        """Whether the folder holds work that a rerun with --resume takes up."""
        return (self.folder / "record.json").is_file()

    def keep_embeddings(self, embeddings: torch.Tensor) -> None:
        with self._writing():
            self.folder.mkdir(parents=True, exist_ok=True)
            part = self.folder / "embeddings.part.npy"
            with open(part, "wb") as f:
                np.save(f, embeddings.cpu().numpy())
                f.flush()
                os.fsync(f.fileno())  # on the disk before the record says it is there
            os.replace(part, self.folder / "embeddings.npy")
        self._record(0)

    def neighbour_lists(self, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32[n, k], ids int64[n, k]) on the disk; the first `rows` hold the kept lists."""
        with self._writing():
            mode = "r+" if self.rows else "w+"
            self._lists = tuple(np.lib.format.open_memmap(self.folder / f"{name}.npy", mode, dtype, (n, k))
                                for name, dtype in (("scores", np.float32), ("ids", np.int64)))
        if any(a.shape != (n, k) for a in self._lists):
            raise TransencError(f"{self.folder} holds neighbour lists of another shape than {n} x {k}; "
                                "rerun without --resume")
        return self._lists

    def done(self, rows: int) -> None:
        """The first `rows` query rows' lists are written: on the disk, then recorded."""
        with self._writing():
            for array in self._lists:
                array.flush()
        self._record(rows)

    def _record(self, rows: int) -> None:
        with self._writing():
            write_files({self.folder / "record.json": json.dumps({"settings": self.settings, "rows": rows}).encode()})
        self.rows = rows

    @contextmanager
    def _writing(self):
        """A failed write names the output the user gave, not this folder, and says how to go on
        where work is kept."""
        hint = MINE_HINT if self.kept else None
        try:
            with writing(self.out, hint):
                yield
        except OutputError as e:  # write_files' own, naming the record
            raise OutputError(self.out, e.reason, hint) from e

    def discard(self) -> None:
        self._lists = None  # the memory maps close with their last reference
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def mine_checkpoint(out: str | Path, settings: dict, resume: bool):
    """A MineCheckpoint for the block that writes `out`: removed when the block completes, and when it
    fails with nothing kept; kept (for --resume) when it fails after the embeddings."""
    checkpoint = MineCheckpoint(out, settings, resume)
    try:
        yield checkpoint
    except BaseException:
        if not checkpoint.kept:
            checkpoint.discard()
        raise
    checkpoint.discard()
