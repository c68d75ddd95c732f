"""The rows of a long encoding pass, kept on the disk as they are computed, so that a stopped pass
goes on after its last record instead of from the start. `label` in bi mode and `mine` encode
every unique sentence before anything else: ten million sentences are about an hour and a half
on two cores.

The pass (models._Encoder._run) runs its batches in an order fixed by the sentences, the model,
the precision and the batch size: `settings` must name these. `PATH` (.npy) holds the rows of the
batches complete, and `PATH.json` how many they are, recorded every writers.RECORD_EVERY_S at most
(the rows on the disk first). A resumed pass takes those rows up and runs the rest: each row comes
out as an unstopped pass computes it, bit for bit. On a CPU the file is the pass's rows themselves,
mapped, out of the process's memory; ScratchRows does the same in TMPDIR for a pass with nothing to
keep."""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from transenc import writers
from transenc.errors import OutputError
from transenc.packing import Batch, to_device
from transenc.writers import read_record, size_for_people, write_record, writing_as


class KeptRows:
    """Made with `resume` and the stopped pass's `settings`, it holds what that pass kept; else it
    starts empty. Failed writes raise OutputError naming `writing_as` (the output the user named),
    with `hint` once anything is kept."""

    def __init__(self, path: Path, settings: dict, resume: bool, writing_as: Path, hint: str):
        self.path, self.record = Path(path), Path(f"{path}.json")
        self.settings, self.writing_as, self.hint = settings, writing_as, hint
        self._state = self._read_record() if resume else None  # the record's content
        self._keeping = False  # whether the file is there for this pass's rows (open)
        self._mapped: np.memmap | None = None  # the file, where it is the pass's tensor (on a CPU)
        self._pending: list[np.ndarray] = []
        self._recorded = time.monotonic()
        if self._state is None:
            self.discard()

    def _read_record(self) -> dict | None:
        kept = read_record(self.record, self.settings)
        try:
            readable = np.load(self.path, mmap_mode="r").dtype == np.float32
            return kept if kept and readable and kept["batches"] > 0 else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def kept(self) -> bool:
        """Whether rows are recorded: a rerun with --resume takes them up."""
        return self.record.is_file()

    @property
    def rows_kept(self) -> int:
        """The rows a resumed pass takes up (where its batches are the stopped pass's)."""
        return self._state["rows"] if self._state else 0

    def complete(self, n: int) -> torch.Tensor | None:
        """The stopped pass's [n, ...] rows where it ran all its batches (no tokenizing, no model
        needed to go on), else None. Mapped from the file, copy-on-write: not read into memory."""
        state = self._state
        if state is None or state["batches"] != state["of"] or state["rows"] != n:
            return None
        return torch.from_numpy(np.load(self.path, mmap_mode="c"))

    def open(self, shape: tuple, batches: list[Batch], device: torch.device) -> tuple[torch.Tensor, int]:
        """The float32 tensor the pass writes its rows into, and how many of `batches` are done (the
        pass goes on after them). On a CPU it is the file itself, mapped: the rows then take none of
        the process's own memory (the kernel's page cache holds them and writes them back), so that
        more sentences than the memory holds still encode. On a GPU it is on the device, with the
        kept rows copied in; each record copies the new rows out."""
        done = self._state["batches"] if self._state and self._state["of"] == len(batches) else 0
        self._of, self._keeping = len(batches), True
        with self._writing():
            file = np.load(self.path, mmap_mode="r+") if done else None  # (readable: _read_record checked)
            if file is None or file.shape != shape:
                done, self._state, file = 0, None, self._allocated(shape)
        if file is None:  # no room for them
            return torch.empty(shape, dtype=torch.float32, device=device), 0
        if device.type == "cpu":
            self._mapped = file
            return torch.from_numpy(file), done
        out = torch.empty(shape, dtype=torch.float32, device=device)
        if done:
            rows = np.concatenate([b.rows for b in batches[:done]])
            out[to_device(torch.from_numpy(rows), device)] = to_device(torch.from_numpy(file[rows]), device)
        return out, done

    def _allocated(self, shape: tuple) -> np.memmap | None:
        """A new file for `shape`'s rows, or None (with a warning) where there is no room for it: a full
        disk, a full quota, or a file size limit (ulimit -f, FAT32's 4 GiB)."""
        try:
            return allocated_npy(self.path, np.float32, shape)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
        self.discard()  # the pass runs on, without keeping its rows
        print(f"transenc: warning: the {size_for_people(4 * int(np.prod(shape)))} of rows that --resume would take "
              f"up do not fit beside {self.writing_as}: not kept", file=sys.stderr)
        return None

    def finished(self, done: int, rows: np.ndarray, out: torch.Tensor) -> None:
        """Batch number `done` (1-based) is in `out` with these rows; records every
        writers.RECORD_EVERY_S, and after the last batch."""
        if not self._keeping:  # no room for them
            return
        self._pending.append(rows)
        if done < self._of and time.monotonic() - self._recorded < writers.RECORD_EVERY_S:
            return
        pending = np.concatenate(self._pending)
        self._pending.clear()
        with self._writing():
            if self._mapped is None:  # the rows are on the device
                file = np.load(self.path, mmap_mode="r+")
                file[pending] = out[to_device(torch.from_numpy(pending), out.device)].cpu().numpy()
                file.flush()
                del file
            else:
                self._mapped.flush()  # on the disk before the record says so
        state = {"batches": done, "of": self._of, "rows": self.rows_kept + len(pending)}
        with self._writing():
            write_record(self.record, self.settings, **state)
        self._state, self._recorded = state, time.monotonic()

    def _writing(self):
        return writing_as(self.writing_as, self.hint if self.kept else None)

    def discard(self) -> None:
        self._keeping = False
        for leftover in (self.path, self.record):
            with contextlib.suppress(OSError):
                leftover.unlink()


class ScratchRows:
    """A KeptRows for a pass that cannot be resumed (a label to standard output or of a stream, a mine
    without --out): on a CPU the rows are a file in TMPDIR all the same, mapped, so that they take
    none of the process's own memory; the file is removed as soon as it is mapped, so that nothing
    is left behind, even by a killed run (on a tmpfs, though, its pages are memory). Where TMPDIR
    has no room for them, or on a GPU, they are in memory."""

    kept, rows_kept = False, 0

    def complete(self, n: int) -> None:
        return None

    def open(self, shape: tuple, batches: list[Batch], device: torch.device) -> tuple[torch.Tensor, int]:
        if device.type == "cpu":
            try:
                with tempfile.NamedTemporaryFile(prefix="transenc-rows-", suffix=".npy") as f:  # the map outlives it
                    return torch.from_numpy(allocated_npy(Path(f.name), np.float32, shape)), 0
            except OSError as e:
                print(f"transenc: warning: the {size_for_people(4 * int(np.prod(shape)))} of embeddings cannot go to "
                      f"TMPDIR ({tempfile.gettempdir()}: {e.strerror}): held in memory", file=sys.stderr)
        return torch.empty(shape, dtype=torch.float32, device=device), 0

    def finished(self, done: int, rows: np.ndarray, out: torch.Tensor) -> None:
        pass  # nothing to record


def allocated_npy(path: Path, dtype, shape: tuple) -> np.memmap:
    """A new .npy file as a writable memory map, its blocks allocated on the disk now: a disk too
    full raises OSError ENOSPC here, where writing into an unallocated map later would kill the
    process with SIGBUS. Where the system (macOS) or the filesystem cannot allocate ahead, the
    blocks are allocated as the rows come."""
    array = np.lib.format.open_memmap(path, "w+", dtype, shape)
    allocate = getattr(os, "posix_fallocate", None)  # not on macOS
    with open(path, "r+b") as f:
        try:
            if allocate is not None:
                allocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
    return array


@contextmanager
def kept_rows(path: Path, settings: dict, resume: bool, writing_as: Path, hint: str):
    """KeptRows for a block that writes an output from the rows: removed when the block completes,
    and when it fails with nothing recorded; kept (for --resume) when it fails after a record."""
    kept = KeptRows(path, settings, resume, writing_as, hint)
    try:
        yield kept
    except BaseException as e:
        if not kept.kept:
            kept.discard()
        elif isinstance(e, OutputError) and not e.hint:  # the output's own failure: the rows kept are still there
            raise OutputError(e.path, e.reason, hint) from e
        raise
    kept.discard()
