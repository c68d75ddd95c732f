"""One transenc process at a time per output: a second `label --out F` or `mine --out F`, or a second
`train --out RUN` (a job scheduler that starts a job again while the first still runs, say), would
write into the first one's partial files and records, and both could end as done over a mixed
output. The claim is a flock: the kernel lets it go however its holder ends, so a killed run
leaves none behind (at most an empty lock file, which the next run takes)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from transenc.errors import TransencError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not claimed there
    fcntl = None


@contextmanager
def claimed(lock: Path, busy: str):
    """The block runs as the one claimant of `lock`, an existing folder (a run's) or a lock file,
    which is made and, at the end, removed. Another process that holds it: TransencError(busy),
    at once. Where the claim cannot be made (no fcntl, a filesystem without locks, a folder that
    cannot be written), the block runs unclaimed and the command's own writes say what is wrong."""
    fd = _take(lock, busy)
    try:
        yield
    finally:
        if fd is not None:
            if not lock.is_dir():
                lock.unlink(missing_ok=True)  # while held: a process waiting on it sees it go (_take)
            os.close(fd)


def _take(lock: Path, busy: str) -> int | None:
    if fcntl is None:
        return None
    while True:
        try:
            if lock.is_dir():
                fd = os.open(lock, os.O_RDONLY)
            else:
                lock.parent.mkdir(parents=True, exist_ok=True)  # (the output's folder, made as it would be)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TransencError(busy) from None
        except OSError:  # ENOLCK: some network filesystems, where no run holds a lock file either
            os.close(fd)
            if not lock.is_dir():
                lock.unlink(missing_ok=True)
            return None
        if _still_there(fd, lock):
            return fd
        os.close(fd)  # its holder removed this lock file as it ended: claim the one there now


def _still_there(fd: int, lock: Path) -> bool:
    try:
        named = os.stat(lock)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
