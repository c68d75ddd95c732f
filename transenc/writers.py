"""Atomic output: results go to a temporary file beside the target, renamed on success only,
so a failed or interrupted job never leaves a half-written file behind."""
from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from transenc.errors import TransencError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_file(path: str | Path | None, flag: str, source: str | Path | None = None) -> None:
    """Refuse, before any work, an output path that is a folder or that is the input file `source`
    (the output would replace it)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise TransencError(f"{flag} {path} is a folder; name the file to write")
    if source is not None and os.path.exists(path) and os.path.exists(source) and os.path.samefile(source, path):
        raise TransencError(f"{flag} {path} is the input file {source}; it would be replaced by the "
                            f"output: choose another {flag}")


@contextmanager
def atomic_open(path: str | Path, binary: bool = False):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _tsv_field(text: str) -> str:
    # A tab or newline inside a sentence (possible from JSONL or CSV input) would break the row.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def score_line(s1: str, s2: str, score: float, as_json: bool) -> str:
    """One output row: TSV `s1 s2 score`, or a JSON object."""
    if as_json:
        return json.dumps({"sentence1": s1, "sentence2": s2, "score": score}, ensure_ascii=False) + "\n"
    return f"{_tsv_field(s1)}\t{_tsv_field(s2)}\t{score:.9g}\n"


@contextmanager
def background_writes(f):
    """A write(data) function whose writes to `f` happen on a thread of their own, in order, at most
    two waiting: the disk works while the caller makes the next chunk. An error of a write (a pipe
    closed early) is raised by the next write() or at the end."""
    pending, errors = queue.Queue(maxsize=2), []

    def drain():
        while (data := pending.get()) is not None:
            if not errors:
                try:
                    f.write(data)
                except BaseException as e:  # noqa: B036 - handed to the caller's thread
                    errors.append(e)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()

    def write(data: bytes) -> None:
        if errors:
            raise errors[0]
        pending.put(data)

    try:
        yield write
    finally:
        pending.put(None)
        thread.join()
    if errors:
        raise errors[0]


def score_rows(chunk, scores, as_json: bool) -> bytes:
    """A PairChunk's output rows (score_line's, every one), as bytes: TSV by the engine."""
    if not as_json:
        return chunk.table.format_tsv(chunk.ids, scores)
    table = chunk.table  # bi mode's table is the whole file's: look up this chunk's rows only
    return "".join(score_line(table[a], table[b], s, True) for (a, b), s in zip(chunk.ids.tolist(), scores.tolist())).encode()


def is_jsonl(path: str | Path | None) -> bool:
    return path is not None and Path(path).suffix.lower() in (".jsonl", ".json")
