"""Atomic output: results go to a temporary file (or folder) beside the target, renamed on success
only, so a failed or interrupted job never leaves a half-written file behind (a device or a pipe,
which cannot be renamed onto, is written in place). A failed write (a full disk, a read-only
filesystem, no permission) raises one OutputError naming the target."""
from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from transenc.errors import OutputError, TransencError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_file(path: str | Path | None, flag: str, source: str | Path | None = None) -> None:
    """Refuse, before any work, an output path that is a folder or that is the input file `source`
    (the output would replace it)."""
    if path is None:
        return
    if str(path) == "":  # an unset shell variable, say: not "no --out", and not the current folder
        raise TransencError(f"{flag} is empty; name the file to write")
    if os.path.isdir(path) or str(path).endswith(os.sep):  # a new folder's name too: not a file of that name
        raise TransencError(f"{flag} {path} is a folder; name the file to write")
    check_output_parents(path, flag)
    if source is not None and os.path.exists(path) and os.path.exists(source) and os.path.samefile(source, path):
        raise TransencError(f"{flag} {path} is the input file {source}; it would be replaced by the "
                            f"output: choose another {flag}")


def check_output_parents(path: str | Path, flag: str) -> None:
    """Refuse, before any work, an output under a file (`--out scores.tsv/x.tsv`): nothing can be
    made there, and the system's words for it (File exists, Not a directory) would not say why."""
    for parent in Path(path).parents:  # the nearest first: the first that exists decides
        if parent.exists():
            if not parent.is_dir():
                raise TransencError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def output_error(path: str | Path, err: BaseException, hint: str | None = None) -> OutputError | None:
    """`err` as the failed write of `path`: an OSError, or safetensors' error for one (a SafetensorError,
    not an OSError, whose text holds "I/O error: <reason> (os error N)"). None for any other error: it
    is no failed write, and goes on as it is."""
    if isinstance(err, OSError) and not isinstance(err, BrokenPipeError):  # a reader that left: cli's quiet exit
        return OutputError(path, err.strerror or str(err), hint)
    safetensors = sys.modules.get("safetensors")  # not imported: the error cannot be its own (and no import to check)
    if safetensors is not None and isinstance(err, safetensors.SafetensorError) and "I/O error: " in str(err):
        code = re.search(r"\(os error (\d+)\)", str(err))
        return OutputError(path, os.strerror(int(code[1])) if code else str(err).split("I/O error: ", 1)[1], hint)
    return None


@contextmanager
def writing(path: str | Path, hint: str | None = None):
    """A failed write in the block (see output_error) raises OutputError naming `path`, with `hint`."""
    try:
        yield
    except Exception as e:
        error = output_error(path, e, hint)
        if error is None:
            raise
        raise error from e


STANDARD_OUTPUT = "standard output"


@contextmanager
def standard_output(binary: bool = False):
    """sys.stdout (its bytes with `binary`) for a command's rows: a failed write, a full disk behind
    `> file`, names standard output. Flushed at the block's end, so that a failure shows there and
    not at the process's exit. Under `python -u` (PYTHONUNBUFFERED) sys.stdout's bytes are a raw
    FileIO, whose write may take only a part of the data and drop the rest (a pipe whose reader left
    takes what fits, with no error): the rows then go through a buffered writer of the same
    descriptor, which writes all or raises. Only its own writes name it: an input that cannot be
    read in the block is that input's error."""
    with writing(STANDARD_OUTPUT):
        sys.stdout.flush()
        buffer = sys.stdout.buffer
        if isinstance(buffer, io.RawIOBase):
            buffer = open(buffer.fileno(), "wb", closefd=False)
            f = buffer if binary else io.TextIOWrapper(buffer, sys.stdout.encoding, sys.stdout.errors)
        else:
            f = buffer if binary else sys.stdout
    yield _Output(f, STANDARD_OUTPUT, None)
    with writing(STANDARD_OUTPUT):
        f.flush()


@contextmanager
def writing_as(path: str | Path, hint: str | None = None):
    """writing(path, hint) for work kept beside an output (its partial records): an OutputError raised
    in the block, which names the file it failed on, is raised naming `path`, the output the user
    gave, with `hint`."""
    try:
        with writing(path, hint):
            yield
    except OutputError as e:
        raise OutputError(path, e.reason, hint) from e


class _Output:
    """atomic_open's temporary file, or standard output: its failed writes name the target. Only the
    file's own writes: an OSError of other work in the block (reading the input) is not a failed
    write of the target."""

    def __init__(self, f, path: Path | str, hint: str | None):
        self._f, self._path, self._hint = f, path, hint

    def write(self, data):
        with writing(self._path, self._hint):
            return self._f.write(data)

    def flush(self) -> None:
        with writing(self._path, self._hint):
            self._f.flush()

    def __getattr__(self, name):  # tell, fileno, ...: the file's own
        return getattr(self._f, name)


def written_in_place(path: Path) -> bool:
    """A device, a pipe or a process's own descriptor (/dev/null, /dev/stdout, a FIFO, /proc/self/fd/1):
    written where it is. A file renamed onto it would replace the device itself (run as root,
    /dev/null would become a plain file) or undo the shell's `>>`."""
    if str(path).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode  # through links
    except OSError:
        return False  # not there yet (or unreadable: the write will say)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _through_links(path: Path) -> Path:
    """What a symbolic link points to: the file it names is replaced, and the link stays a link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def partial_path(path: str | Path, suffix: str = "") -> Path:
    """Where a long job keeps its unfinished work for `path`: `.NAME.partial` + suffix beside the file
    it names (through a symbolic link)."""
    target = _through_links(Path(path))
    return target.with_name(f".{target.name}.partial{suffix}")


def _open(target: str | Path | int, binary: bool, append: bool = False):
    """Append, for a device or pipe written in place: /dev/stdout reopens the shell's file, whose
    `>` has emptied it already and whose `>>` wants it kept."""
    mode = "a" if append else "w"
    return open(target, mode + "b") if binary else open(target, mode, encoding="utf-8", newline="\n")


def _temporary_affixes(target: Path) -> dict:
    """How atomic_open and atomic_dir name their temporaries: `.NAME.XXXXXXXX.tmp` beside `target`."""
    return {"dir": target.parent, "prefix": f".{target.name}.", "suffix": ".tmp"}


def temporary_of(name: str) -> str | None:
    """The name of the file or folder that a temporary of atomic_open or atomic_dir (tempfile's 8
    random characters) was to become, or that a folder atomic_dir put aside for its replacement
    (`.old`) was; None for any other name."""
    made = re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}\.(?:tmp|old)", name)
    return made and made.group(1)


def is_temporary(name: str) -> bool:
    """A name atomic_open or atomic_dir gives its temporary: what a killed writer leaves behind."""
    return temporary_of(name) is not None


def temporaries_of(out: str | Path) -> list[Path]:
    """The temporaries that killed writers of label's or mine's `out` leave beside it: out's own, and
    those of the work kept for it (`.OUT.partial*`, records and all). (Those in mine's kept folder
    go with it, once the mine completes.)"""
    target = _through_links(Path(out))
    kept = partial_path(target).name
    return [path for path in target.parent.glob(".*")
            if temporary_of(path.name) in (target.name, kept) or (temporary_of(path.name) or "").startswith(kept + ".")]


def remove_temporaries(found: Iterable[Path]) -> None:
    """Removes those of the paths `found` that are temporaries (is_temporary): the files and folders,
    up to a model's or an output's size, that killed writers left hidden and nothing takes up. Only
    under the claim (transenc.claims) of what they were written for, when no other process writes
    there. One that cannot be removed stays: it harms nothing."""
    for stale in sorted(found, reverse=True):  # inner ones first
        if not is_temporary(stale.name):
            continue
        with contextlib.suppress(OSError):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()


@contextmanager
def atomic_open(path: str | Path, binary: bool = False, hint: str | None = None, make_folder: bool = False):
    """A file to write `path` with: a temporary file beside it, renamed onto it when the block completes,
    removed when it fails (a symbolic link's target is replaced, the link kept; a device or pipe is
    written in place). A failed write (the folder, the temporary file, its writes, the rename) raises
    OutputError naming `path`, with `hint`. `make_folder`: for an output the user named, whose folder
    may be new; a job's own files go into the folders it made as it began, and a folder removed under
    it is not made again, half empty (the job stops instead)."""
    path = Path(path)
    in_place = written_in_place(path)
    target = _through_links(path)
    with writing(path, hint):
        if in_place:
            f, tmp = _open(path, binary, append=True), None
        else:
            if make_folder:
                target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(**_temporary_affixes(target))
            f = _open(fd, binary)
    try:
        yield _Output(f, path, hint)
        with writing(path, hint):
            f.close()  # the buffer's last data goes out here: a full disk can fail it too
            if tmp is not None:
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
                os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the write failed already: closing the rest fails alike, and is no news
            f.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


RECORD_EVERY_S = 10.0  # records of kept work (resumable_open, kept_rows): what a stopped job loses, at most
# The last words of a stopped label or mine that kept some work (train's: run_folder.RESUME_HINT).
KEPT_WORK_HINT = "rerun with --resume to go on with the work already kept"


@contextmanager
def resumable_open(path: str | Path | None, settings: dict | None, resume: bool, hint: str | None = None):
    """atomic_open for a long output that may be stopped: the rows go to `.NAME.partial` beside
    `path`, and `done(rows)`, called once the first `rows` are written, records them complete in
    `.NAME.partial.json` (every RECORD_EVERY_S at most). A stopped run keeps both; with `resume`
    and the same `settings`, the next run keeps those rows and goes on after them. Yields (file,
    rows already there, done); success renames the partial onto `path`. A failed write raises
    OutputError naming `path`, with `hint` where rows are kept. Without `settings` (an input that
    cannot be read again), or onto a device or a pipe, it writes as atomic_open does, and `done` is
    None, as it is to standard output (`path` None)."""
    if path is None:
        with standard_output(binary=True) as f:
            yield f, 0, None
        return
    if settings is None or written_in_place(Path(path)):  # nothing to resume from, or nothing to keep
        with atomic_open(path, binary=True, make_folder=True) as f:
            yield f, 0, None
        return
    path = _through_links(Path(path))
    partial = partial_path(path)
    record = partial.with_name(partial.name + ".json")
    kept = _kept_rows(partial, record, settings) if resume else None
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(partial, "r+b" if kept else "wb")
        if kept:
            f.truncate(kept["bytes"])  # rows past the last recorded ones may be half-written
            f.seek(kept["bytes"])
    rows, recorded = (kept["rows"] if kept else 0), time.monotonic()

    def done(total: int) -> None:
        nonlocal rows, recorded
        if time.monotonic() - recorded < RECORD_EVERY_S:
            return  # an fsync per chunk could hold a fast label up on a slow disk
        recorded = time.monotonic()
        with writing_as(path):
            f.flush()
            os.fsync(f.fileno())  # the rows reach the disk before the record says so
            write_record(record, settings, rows=total, bytes=f.tell())
        rows = total

    try:
        yield _Output(f, path, None), rows, done
        with writing(path):
            f.close()
            os.replace(partial, path)
            record.unlink(missing_ok=True)
    except BaseException as e:
        with contextlib.suppress(OSError):
            f.close()
        if rows == 0 or not partial.is_file():  # nothing complete, or it went with its folder: nothing to resume
            for leftover in (partial, record):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        elif isinstance(e, OutputError) and hint:  # complete rows are kept: say how to go on from them
            raise OutputError(e.path, e.reason, hint) from e
        raise


def _kept_rows(partial: Path, record: Path, settings: dict) -> dict | None:
    """A stopped run's record, where it was made with `settings` and its rows are all there."""
    kept = read_record(record, settings)
    try:
        return kept if kept and partial.stat().st_size >= kept["bytes"] and kept["rows"] > 0 else None
    except (OSError, KeyError, TypeError):
        return None


def read_record(record: Path, settings: dict) -> dict | None:
    """What a stopped job recorded of its work (write_record), where it was made with `settings`: the
    same input and options, so that the work kept is this job's. None where there is no such record."""
    try:
        kept = json.loads(Path(record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and kept.get("settings") == settings else None


def write_record(record: Path, settings: dict, **state) -> None:
    """The record of a long job's kept work: its settings and `state`, the file replaced whole."""
    write_files({Path(record): json.dumps({"settings": settings, **state}).encode()})


def write_files(files: dict[Path, bytes]) -> None:
    """Files that belong together (a report and its images), each written as atomic_open writes one,
    all complete before the first is renamed into place: a failed write leaves none of them."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            f = stack.enter_context(atomic_open(path, binary=True))
            f.write(data)
            f.flush()  # a full disk fails here, while every file is still a temporary one


@contextmanager
def atomic_dir(target: str | Path, hint: str | None = None):
    """A temporary folder beside `target` to save into (a model): renamed onto `target` when the block
    completes (a folder already there is replaced), removed with its contents when the block fails, so
    `target` is only ever a complete save. A failed write, in the block or of the folder, raises
    OutputError naming `target`, with `hint`. `target`'s folder is not made (atomic_open's `make_folder`)."""
    target = _through_links(Path(target))
    with writing(target, hint):
        tmp = Path(tempfile.mkdtemp(**_temporary_affixes(target)))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private; give it a normal folder's mode
            _replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _replace_dir(new: Path, target: Path) -> None:
    """rename(2) cannot put a folder over a non-empty one: the old folder steps aside first, and comes
    back if the new one cannot take its place. (Killed between the two, it stays as `.NAME.XXXXXXXX.old`,
    a temporary the next run removes: is_temporary.)"""
    if not target.is_dir():
        os.replace(new, target)
        return
    old = new.with_suffix(".old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def size_for_people(n: float) -> str:
    """Bytes for people, in powers of 1000 as `df -H` gives them: 512 bytes, 87.3 MB, 1.2 GB."""
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def free_space_warning(folder: str | Path, needed_bytes: int) -> str | None:
    """A warning line, ready to print, when the filesystem `folder` is on (its nearest existing parent's:
    a run folder not made yet) has less free space than `needed_bytes`; None when that fits."""
    where = Path(folder).absolute()
    while not where.exists():  # the root always exists
        where = where.parent
    free = shutil.disk_usage(where).free
    if free >= needed_bytes:
        return None
    return (f"transenc: warning: {folder} has {size_for_people(free)} free and this needs about "
            f"{size_for_people(needed_bytes)}: "
            "it may stop for lack of space")


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
    """A write(data, then=None) function whose writes to `f` happen on a thread of their own, in
    order, at most two waiting, each followed by its `then()`: the disk works while the caller makes
    the next chunk. An error of a write (a pipe closed early; atomic_open's OutputError for a full
    disk) is raised by the next write() or at the end."""
    pending, errors = queue.Queue(maxsize=2), []

    def drain():
        while (item := pending.get()) is not None:
            if not errors:
                try:
                    data, then = item
                    f.write(data)
                    if then is not None:
                        then()
                except BaseException as e:  # noqa: B036 - handed to the caller's thread
                    errors.append(e)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()

    def write(data: bytes, then=None) -> None:
        if errors:
            raise errors[0]
        pending.put((data, then))

    try:
        yield write
    finally:
        pending.put(None)
        thread.join()
    if errors:
        raise errors[0]


def score_rows(chunk, scores, fmt: str) -> bytes:
    """A PairChunk's output rows in `fmt` (output_format's), as bytes: TSV by the engine."""
    if fmt == "npy":
        return scores.astype("<f4", copy=False).tobytes()
    if fmt == "tsv":
        return chunk.table.format_tsv(chunk.ids, scores)
    table = chunk.table  # bi mode's table is the whole file's: look up this chunk's rows only
    return "".join(score_line(table[a], table[b], s, True) for (a, b), s in zip(chunk.ids.tolist(), scores.tolist())).encode()


# --out's suffix names its rows' format; any other is refused: a .csv holding TSV would mislead
OUTPUT_FORMATS = {"": "tsv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".npy": "npy"}


def output_format(path: str | Path | None, allowed=("tsv", "jsonl", "npy")) -> str:
    """The rows' format --out `path` asks for by its suffix (standard output, None, or a device or a
    pipe of another suffix: TSV); TransencError for a suffix that names none of `allowed`."""
    suffix = Path(path).suffix.lower() if path is not None else ""
    fmt = OUTPUT_FORMATS.get(suffix, "tsv" if path is None or written_in_place(Path(path)) else None)
    if fmt not in allowed:
        names = {"tsv": ".tsv (or .txt, or none)", "jsonl": ".jsonl (or .json)", "npy": ".npy (the scores alone)"}
        raise TransencError(f"--out {path}: cannot write '{suffix}' here; name it "
                            + " or ".join(names[f] for f in allowed))
    return fmt


def npy_header(rows: int) -> bytes:
    """The header of a .npy file of `rows` float32 scores (format 1.0), written before the rows
    stream in after it: numpy.load reads the whole, or maps it (mmap_mode="r")."""
    from numpy.lib import format as npy  # here: `transenc report` and `train` import this module too

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows,)})
    return header.getvalue()
