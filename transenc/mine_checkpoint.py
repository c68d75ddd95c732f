"""What a stopped `transenc mine --out F` keeps for `--resume`, in the folder `.F.partial/` beside F:
the sentences' embeddings as they are encoded (transenc.kept_rows), then the neighbour lists of
the query rows done so far. A search among a million sentences runs for about an hour on two
cores; stopped, it goes on from its last block of queries instead of from the start."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from transenc.errors import OutputError, TransencError
from transenc.kept_rows import KeptRows, allocated_npy
from transenc.writers import KEPT_WORK_HINT, partial_path, read_record, write_record, writing_as


class MineCheckpoint:
    """`embeddings`: the encoding pass's KeptRows. `rows`: the query rows whose neighbour lists are
    complete. Made with `resume` and the stopped run's `settings`, it holds what that run kept;
    otherwise it starts empty."""

    def __init__(self, out: str | Path, settings: dict, resume: bool):
        self.out = Path(out)
        self.folder = partial_path(self.out)
        self.record = self.folder / "record.json"
        self.settings = settings
        if not resume:
            self.discard()
        self.embeddings = KeptRows(self.folder / "embeddings.npy", settings, resume, self.out, KEPT_WORK_HINT)
        kept = self._kept() if resume else None
        self.rows = kept["rows"] if kept else 0
        self.resumed = kept is not None or self.embeddings.rows_kept > 0
        self._lists: tuple[np.ndarray, np.ndarray] | None = None
        if not self.resumed:
            self.discard()
        with self._writing():
            self.folder.mkdir(parents=True, exist_ok=True)

    def _kept(self) -> dict | None:
        kept = read_record(self.record, self.settings)
        complete = all((self.folder / f"{name}.npy").is_file() for name in ("scores", "ids"))
        return kept if kept and complete and isinstance(kept.get("rows"), int) else None

    @property
    def kept(self) -> bool:
        """Whether the folder holds work that a rerun with --resume takes up."""
        return self.embeddings.kept or self.record.is_file()

    def neighbour_lists(self, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32[n, k], ids int64[n, k]) on the disk; the first `rows` hold the kept lists."""
        files = {name: self.folder / f"{name}.npy" for name in ("scores", "ids")}
        try:
            with self._writing():
                self._lists = tuple(np.lib.format.open_memmap(files[name], "r+") if self.rows else
                                    allocated_npy(files[name], dtype, (n, k))
                                    for name, dtype in (("scores", np.float32), ("ids", np.int64)))
        except OutputError:
            if not self.rows:  # new files, allocated whole up front: gigabytes, and no lists in them yet
                for path in files.values():
                    path.unlink(missing_ok=True)
            raise
        if any(a.shape != (n, k) for a in self._lists):
            raise TransencError(f"{self.folder} holds neighbour lists of another shape than {n} x {k}; "
                                "rerun without --resume")
        return self._lists

    def done(self, rows: int) -> None:
        """The first `rows` query rows' lists are written: on the disk, then recorded."""
        with self._writing():
            for array in self._lists:
                array.flush()
            write_record(self.record, self.settings, rows=rows)
        self.rows = rows

    def _writing(self):
        """A failed write names the output the user gave, not this folder, and says how to go on
        where work is kept."""
        return writing_as(self.out, KEPT_WORK_HINT if self.kept else None)

    def discard(self) -> None:
        self._lists = None  # the memory maps close with their last reference
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def mine_checkpoint(out: str | Path, settings: dict, resume: bool):
    """A MineCheckpoint for the block that writes `out`: removed when the block completes, and when it
    fails with nothing kept; kept (for --resume) when it fails after a record."""
    checkpoint = MineCheckpoint(out, settings, resume)
    try:
        yield checkpoint
    except BaseException:
        if not checkpoint.kept:
            checkpoint.discard()
        raise
    checkpoint.discard()
