"""Streaming readers for pair files: TSV, CSV, JSONL, `s1||s2` lines and the STS-B csv layout.

Every problem is reported as an InputError naming file and line. With on_error="skip" bad
lines are counted and skipped instead. The line formats (tsv, bars, sts) are read by the engine's
scanner (csrc/pairscan.cpp: a 10M-pair file at disk speed); it hands back the rare line whose
reading needs Python's rules, which the parsers below then read, so both accept the same lines.
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import sys
import tempfile
import weakref
from array import array
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from transenc.errors import InputError, TransencError
from transenc.pairset import PairSet
from transenc.writers import writing

FORMATS = ("tsv", "csv", "jsonl", "bars", "sts")
SCANNED = ("tsv", "bars", "sts")  # the line formats the engine's scanner reads
BLOCK_BYTES = 1 << 23  # read at a time by the scanner
# Pairs per chunk when streaming a file: a chunk's ids, labels and scores are all that is held per
# pair (~1.3 MiB at this size), so a file of any length labels in bounded memory.
CHUNK_PAIRS = 65536
# A first pass keeps the sentence ids (8 bytes a pair) of up to this many pairs (128 MiB), so that
# `transenc label` reads a file of up to 16M pairs once; a longer one is read again for its pairs.
KEEP_IDS_PAIRS = 1 << 24
STANDARD_INPUT = "-"  # the name that reads standard input where a file is asked for
FLOAT32_MAX = float(np.finfo(np.float32).max)  # labels are float32
_BY_SUFFIX = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
_JSON_KEYS = (("sentence1", "sentence2"), ("text_a", "text_b"))


class BadLine(Exception):
    """A bad record: (line number, reason). Raised by parsers, handled by Problems."""


class Problems:
    """Raises InputError for a bad line, or counts it when skipping was asked for."""

    def __init__(self, path: Path, on_error: str):
        if on_error not in ("raise", "skip"):
            raise TransencError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.path, self.skip, self.skipped = path, on_error == "skip", 0

    def bad(self, number: int, reason: str) -> None:
        if not self.skip:
            raise InputError(self.path, number, reason)
        self.skipped += 1


def text_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines, each decoded as strict UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.bad(number, f"invalid UTF-8 at byte {e.start} of the line")
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


def is_tsv_header(fmt: str, first_line: str) -> bool:
    """A tsv file's line 1 that names its columns as the csv and jsonl readers know them
    (sentence1, sentence2 or text_a, text_b, then anything): a header, as a datasets export writes
    it, and no pair to score or train on."""
    return fmt == "tsv" and tuple(field.strip().lower() for field in first_line.split("\t")[:2]) in _JSON_KEYS


def detect_format(path: Path, first_line: str) -> str:
    fmt = _BY_SUFFIX.get(path.suffix.lower(), "tsv")
    if fmt == "csv" and first_line.count("\t") >= 6:
        return "sts"  # STS-B ships tab-separated fields under a .csv name
    if fmt == "tsv" and "\t" not in first_line and "||" in first_line:
        return "bars"
    return fmt


def record_problem(a: str, b: str, label: float | None) -> str | None:
    """Why a parsed record is refused, or None."""
    problem = text_problem(a, b)
    if problem:
        return problem
    return None if label is None else score_problem(label)


def score_problem(label: float) -> str | None:
    """Why a parsed gold score is refused (not finite as the float32 it is kept as), or None."""
    return None if is_score(label) else f"score is not a finite number ({label})"


def not_a_number(text: str) -> str:
    """Why a gold score field that does not parse is refused."""
    return f"score '{text.strip()[:40]}' is not a number"


def text_problem(*texts: str) -> str | None:
    """Why sentences are refused (label, train and mine alike), or None: the first rule any of them
    breaks, in the order the engine's scanner checks them (an empty sentence beside a NUL is 'empty')."""
    # plain loops, no generators: this runs once per record of the Python parsers (csv, jsonl)
    for text in texts:
        if not text.strip():
            return "empty sentence"
    for text in texts:
        if "\x00" in text:  # a binary file or a broken export, never text
            return "NUL byte in a sentence"
    for text in texts:
        if not text.isascii() and not _encodable(text):  # JSON's "\ud800": not text, no UTF-8 form
            return "a sentence holds an unpaired surrogate (\\ud800-\\udfff)"
    return None


def first_text_problem(texts: Sequence) -> tuple[int, str] | None:
    """(index, why) of the first of `texts` (given in memory: a list, a PairSet's sentences) that is
    not a str text_problem takes, or None. Over the whole list at once first, with built-ins (a few
    times faster than text by text: the API checks a PairSet the readers made on every call)."""
    try:
        joined = "\n".join(texts)
    except TypeError:  # one is not a str
        joined = None
    if joined is not None and all(map(str.strip, texts)) and "\x00" not in joined \
            and (joined.isascii() or _encodable(joined)):
        return None
    for i, text in enumerate(texts):
        problem = text_problem(text) if isinstance(text, str) else f"not a str but {type(text).__name__}"
        if problem:
            return i, problem
    return None


def is_score(value: float) -> bool:
    """Finite as the float32 it is kept as (1e300 is a finite float64, but inf as a label)."""
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_records(records, problems: "Problems") -> Iterator[tuple[int, str, str, float | None]]:
    """The (line number, a, b, label) records that record_problem passes; the others go to problems."""
    for number, a, b, label in records:
        reason = record_problem(a, b, label)
        if reason:
            problems.bad(number, reason)
        else:
            yield number, a, b, label


class PairChunk(NamedTuple):
    table: object  # the engine's SentenceTable: the sentences `ids` point into
    ids: np.ndarray  # int32 [n, 2], in input order
    labels: np.ndarray  # float64 [n]; NaN where the line has no score


class FirstPass(NamedTuple):
    """PairReader.first_pass: what one read of a pairs file tells before any pair is scored."""
    pairs: int  # valid pairs
    table: object | None  # the engine's SentenceTable of the file's unique sentences (when asked for)
    kept: list[PairChunk] | None  # the chunks of ids into `table`, where the file is small enough


class PairReader:
    """The validated pairs of a pairs file, streamed: as (sentence1, sentence2, label or None)
    records, or as PairChunks of interned sentence ids.

    Every pass reads the file again from the start, so a consumer may make several;
    `skipped` counts the bad lines skipped by the last pass (on_error="skip").
    """

    def __init__(self, path: str | Path, fmt: str | None = None, on_error: str = "raise"):
        self.path = Path(path)  # as the user named it, in every message
        self.source = _spooled(self.path) if is_stream(self.path) else self.path  # what the passes read
        if self.source is not self.path:
            _SPOOLS.append(weakref.finalize(self, _remove, self.source))
        if not self.source.is_file():
            raise not_a_file(self.path, "pairs file")
        with open(self.source, "rb") as f:
            _check_head(self.path, f.read(HEAD_BYTES))
        if fmt is not None and fmt not in FORMATS:
            raise InputError(self.path, 0, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
        self.fmt, self.on_error, self.skipped = fmt, on_error, 0
        Problems(self.path, on_error)  # checks on_error now, not at the first pass

    def _lines(self, problems: Problems) -> tuple[str, Iterator[tuple[int, str]], bool]:
        """The format (given, or from the first readable line), the (number, text) lines, and whether
        line 1 was a tsv header (left out of the lines)."""
        lines = text_lines(self.source, problems)
        first = next(lines, None)
        if first is None:
            raise InputError(self.path, 0, "file is empty" if not problems.skipped else "no readable lines")
        fmt = self.fmt or detect_format(self.path, first[1])
        if first[0] == 1 and is_tsv_header(fmt, first[1]):
            return fmt, lines, True
        return fmt, itertools.chain([first], lines), False

    def format(self) -> str:
        """The format the passes read: the one given, or the one the file's first line shows."""
        return self._lines(Problems(self.path, self.on_error))[0]

    def _no_pairs(self, problems: Problems) -> InputError:
        return InputError(self.path, 0, "no valid sentence pairs" if problems.skipped else "file holds no sentence pairs")

    def __iter__(self) -> Iterator[tuple[str, str, float | None]]:
        for _, a, b, label in self.numbered():
            yield a, b, label

    def numbered(self) -> Iterator[tuple[int, str, str, float | None]]:
        """(line number, sentence1, sentence2, label or None) of each valid pair, read by Python's parsers."""
        problems = Problems(self.path, self.on_error)
        fmt, lines, _ = self._lines(problems)
        records = _csv_records(lines, problems) if fmt == "csv" else _line_records(_PARSERS[fmt], lines, problems)
        good = 0
        for record in _valid_records(records, problems):
            good += 1
            self.skipped = problems.skipped
            yield record
        self.skipped = problems.skipped
        if good == 0:
            raise self._no_pairs(problems)

    def chunks(self, chunk_pairs: int, table=None) -> Iterator[PairChunk]:
        """The pairs in chunks of chunk_pairs (the last one shorter), in input order. Sentences are
        interned into `table`, one for the whole file (ids that hold across chunks and passes), or,
        when None, into a new table per chunk (memory bounded by the chunk)."""
        fmt, _, header = self._lines(Problems(self.path, self.on_error))  # (the empty-file errors)
        chunker = _Chunker(chunk_pairs, table)
        if fmt not in SCANNED:
            yield from self._parsed(chunker)
            return
        problems, good = Problems(self.path, self.on_error), 0
        for chunk in _scanned(self.source, fmt, problems, chunker, after_header=header):
            good += len(chunk.ids)
            self.skipped = problems.skipped
            yield chunk
        self.skipped = problems.skipped
        if good == 0:
            raise self._no_pairs(problems)

    def first_pass(self, chunk_pairs: int, sentences: bool) -> FirstPass:
        """One pass over the file: its number of valid pairs (a bad line raises here, on_error="raise",
        before any pair is scored), and with `sentences` the table of its unique sentences and its
        chunks of pair ids without labels (None past KEEP_IDS_PAIRS pairs, where a consumer must
        read the pairs again)."""
        from transenc._C import SentenceTable

        table = SentenceTable() if sentences else None
        kept, pairs = ([] if sentences else None), 0
        for chunk in self.chunks(chunk_pairs, table):
            pairs += len(chunk.ids)
            kept = kept if kept is not None and pairs <= KEEP_IDS_PAIRS else None
            if kept is not None:
                kept.append(chunk._replace(labels=None))
        return FirstPass(pairs, table, kept)

    def _parsed(self, chunker: "_Chunker") -> Iterator[PairChunk]:
        for a, b, label in self:  # the records' own checks, counts and errors
            chunker.add_row(chunker.table.intern(a), chunker.table.intern(b), label)
            if chunker.full():
                yield chunker.take()
        if chunker.rows:
            yield chunker.take()


def read_sentences(path: str | Path) -> list[str]:
    """One sentence per line (`-`: standard input), strict UTF-8; an empty file, an empty line, a tab
    (which would break the TSV output) or a NUL byte (which label and train refuse in the pairs mined)
    raises InputError with the 1-based line number."""
    if str(path) == STANDARD_INPUT:
        data = sys.stdin.buffer.read()
    else:
        if not (Path(path).is_file() or is_stream(Path(path))):
            raise not_a_file(Path(path), "sentences file")
        with open(path, "rb") as f:
            data = f.read()
    _check_head(Path(path), data[:HEAD_BYTES])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, start = data.count(b"\n", 0, e.start) + 1, data.rfind(b"\n", 0, e.start) + 1
        raise InputError(path, line, f"invalid UTF-8 at byte {e.start - start} of the line") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    if not lines:
        raise InputError(path, 1, "empty file: no sentences")
    sentences = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line.strip():
            raise InputError(path, number, "empty line")
        if "\t" in line:
            raise InputError(path, number, "tab character in a sentence (the output is TSV)")
        problem = text_problem(line)  # the rules of a pair's sentences (NUL; decoded text holds no surrogate)
        if problem:
            raise InputError(path, number, problem)
        sentences.append(line)
    return sentences


HEAD_BYTES = 1 << 16  # what _check_head looks at: a file's first 64 KiB


def _check_head(path: Path, head: bytes) -> None:
    """Refuses a file whose first bytes show it is no text the readers take, with what to do: read
    on, a gzip file would be 'invalid UTF-8 at byte 1' and a file of CR-ended lines (classic Mac OS,
    some exports) one long line, that is one pair of glued sentences."""
    if head.startswith(b"\x1f\x8b"):
        raise InputError(path, 0, "a gzip file: decompress it first (zcat FILE | transenc ... -)")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(path, 0, "UTF-16 text: convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)")
    if b"\n" not in head and head.count(b"\r") >= 2:  # (one CR alone may be a stray one in a one-line file)
        raise InputError(path, 0, "lines end in a carriage return alone (CR, classic Mac OS): convert them to LF "
                                  "first (tr '\\r' '\\n')")


def not_a_file(path: Path, what: str) -> InputError:
    """Why `path` cannot be read as the `what` ("pairs file", ...) asked for."""
    if path.is_dir():
        return InputError(path, 0, f"is a folder, not a {what}")
    return InputError(path, 0, "a symbolic link to no file (or a loop of links)" if path.is_symlink() else "no such file")


def is_stream(path: Path) -> bool:
    """Standard input (`-`), a pipe or a process substitution (/dev/fd/63): a stream, read once."""
    try:
        return str(path) == STANDARD_INPUT or (path.exists() and not (path.is_file() or path.is_dir()))
    except OSError:
        return False


SPOOL_HINT = ("a stream of pairs is copied there, as they are read twice: set TMPDIR to a folder with room for "
              "them, or give them as a file")


def _spooled(path: Path) -> Path:
    """Every pass over the pairs reads them from the start, and a stream cannot be read twice: it is
    copied once to a temporary file (in TMPDIR), which the passes read. A failed write of it (a full
    TMPDIR) raises OutputError naming TMPDIR."""
    def spool_writes():  # the stream's reads stay outside: their errors are its own
        return writing(tempfile.gettempdir(), SPOOL_HINT)

    stream = sys.stdin.buffer if str(path) == STANDARD_INPUT else open(path, "rb")
    with spool_writes():
        spool = tempfile.NamedTemporaryFile(prefix="transenc-pairs-", suffix=path.suffix, delete=False)
    try:
        while block := stream.read(BLOCK_BYTES):
            with spool_writes():
                spool.write(block)
        with spool_writes():
            spool.close()
    except BaseException:
        with contextlib.suppress(OSError):
            spool.close()
        _remove(Path(spool.name))
        raise
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return Path(spool.name)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


_SPOOLS: list[weakref.finalize] = []  # each removes its spool when its reader goes, or at remove_spools


def remove_spools() -> None:
    """Remove the spools of readers still alive (one an error's traceback holds, say): the `transenc`
    command leaves without the interpreter's finalization, which would have removed them."""
    while _SPOOLS:
        _SPOOLS.pop()()


def read_pairs(path: str | Path, fmt: str | None = None, on_error: str = "raise") -> tuple[PairSet, int]:
    """Read a whole pairs file into a PairSet. Returns (pairs, number of skipped bad lines)."""
    reader = PairReader(path, fmt, on_error)
    return pair_set(reader), reader.skipped


def pair_set(reader: PairReader) -> PairSet:
    """A PairReader's pairs, read whole."""
    from transenc._C import SentenceTable

    table = SentenceTable()
    chunks = list(reader.chunks(1 << 20, table))
    ids = np.concatenate([c.ids for c in chunks])
    labels = np.concatenate([c.labels for c in chunks])
    labeled = len(labels) and not np.isnan(labels).any()
    return PairSet(table.texts(), ids, labels.astype(np.float32) if labeled else None)


class _Chunker:
    """Rows (two sentence ids and a label) gathered into PairChunks of `size`."""

    def __init__(self, size: int, table=None):
        from transenc._C import SentenceTable

        self.size, self.shared, self.new_table = size, table, SentenceTable
        self._start()

    def _start(self) -> None:
        self.table = self.shared if self.shared is not None else self.new_table()
        self.pieces, self.rows = [], 0
        self.ids, self.labels = array("i"), array("d")  # single rows since the last piece

    def room(self) -> int:
        return self.size - self.rows

    def full(self) -> bool:
        return self.rows >= self.size

    def _flush_single_rows(self) -> None:
        if self.labels:
            self.pieces.append((np.frombuffer(self.ids, np.int32).reshape(-1, 2), np.frombuffer(self.labels)))
            self.ids, self.labels = array("i"), array("d")

    def add_rows(self, ids: np.ndarray, labels: np.ndarray) -> None:
        if len(labels):
            self._flush_single_rows()
            self.pieces.append((ids, labels))
            self.rows += len(labels)

    def add_row(self, a: int, b: int, label: float | None) -> None:
        self.ids.extend((a, b))
        self.labels.append(math.nan if label is None else label)
        self.rows += 1

    def take(self) -> PairChunk:
        self._flush_single_rows()
        ids, labels = zip(*self.pieces)
        chunk = PairChunk(self.table, np.concatenate(ids), np.concatenate(labels))
        self._start()
        return chunk


def _scanned(path: Path, fmt: str, problems: Problems, chunker: _Chunker,
             after_header: bool = False) -> Iterator[PairChunk]:
    """The engine's scanner over the file, a block at a time (after_header: from line 2); a deferred
    line is read here."""
    from transenc._C import scan_pairs

    with open(path, "rb") as f:
        buf, start, line, eof = b"", 0, 0, False
        if after_header:
            f.readline()
            line = 1
        while True:
            ids, labels, bad, deferred, start, line = scan_pairs(buf, start, line, chunker.room(), eof, fmt,
                                                                 not problems.skip, chunker.table)
            chunker.add_rows(ids, labels)
            for number, reason in bad:
                problems.bad(number, reason)
            if deferred:
                _read_deferred(fmt, *deferred, problems, chunker)
            if chunker.full():
                yield chunker.take()
            elif not deferred:  # the scan read every complete line of the block
                if eof:
                    break
                more = f.read(BLOCK_BYTES)
                buf, start, eof = buf[start:] + more, 0, not more
    if chunker.rows:
        yield chunker.take()


def _read_deferred(fmt: str, number: int, text: str, problems: Problems, chunker: _Chunker) -> None:
    if not text.strip():
        return  # Unicode whitespace only: a blank line
    for _, a, b, label in _valid_records(_line_records(_PARSERS[fmt], [(number, text)], problems), problems):
        chunker.add_row(chunker.table.intern(a), chunker.table.intern(b), label)


def _line_records(parse, lines, problems: Problems):
    for number, text in lines:
        try:
            yield parse(number, text)
        except BadLine as e:
            problems.bad(*e.args)


def _number(text: str, number: int) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadLine(number, not_a_number(text)) from None


def _optional_score(fields: list[str]) -> float | None:
    """A third field is a gold score when it reads as a number; anything else is ignored."""
    try:
        return float(fields[2]) if len(fields) > 2 else None
    except ValueError:
        return None


def _parse_tsv(number: int, text: str):
    fields = text.split("\t")
    if len(fields) < 2:
        raise BadLine(number, "expected at least 2 tab-separated fields (sentence1, sentence2)")
    return number, fields[0], fields[1], _optional_score(fields)


def _parse_bars(number: int, text: str):
    fields = text.split("||")
    if len(fields) < 2:
        raise BadLine(number, "expected 'sentence1||sentence2'")
    return number, fields[0], fields[1], _optional_score(fields)


def _parse_sts(number: int, text: str):
    # genre, file, year, id, score, sentence1, sentence2[, extra fields]
    fields = text.split("\t")
    if len(fields) < 7:
        raise BadLine(number, f"expected 7 tab-separated STS fields, found {len(fields)}")
    return number, fields[5], fields[6], _number(fields[4], number)


def _parse_jsonl(number: int, text: str):
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadLine(number, f"invalid JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise BadLine(number, "expected a JSON object")
    for ka, kb in _JSON_KEYS:
        if ka in record and kb in record:
            a, b = record[ka], record[kb]
            if not isinstance(a, str) or not isinstance(b, str):
                raise BadLine(number, f"'{ka}' and '{kb}' must be strings")
            field = "label" if record.get("label") is not None else "score"  # a null label leaves the score
            label = record.get(field)
            if label is not None and (isinstance(label, bool) or not isinstance(label, (int, float))):
                raise BadLine(number, f"'{field}' must be a number")
            return number, a, b, None if label is None else float(label)
    raise BadLine(number, "expected keys sentence1/sentence2 or text_a/text_b")


_PARSERS = {"tsv": _parse_tsv, "bars": _parse_bars, "jsonl": _parse_jsonl, "sts": _parse_sts}


def _csv_records(lines, problems: Problems):
    """CSV with a header: the sentence1/sentence2 columns if named, else the first two."""
    record = []  # the lines the reader took for the row it gives next: a quoted field may span several
    ended = []  # not empty once the reader asked for a line past the last: it was inside a quoted field

    def texts():
        for number, text in lines:
            record.append((number, text))
            yield text + "\n"
        ended.append(True)

    rows = csv.reader(texts())
    names = [n.strip().lower() for n in next(rows)]
    a = names.index("sentence1") if "sentence1" in names else 0
    b = names.index("sentence2") if "sentence2" in names else 1
    score = next((names.index(n) for n in ("score", "label") if n in names), None)
    record.clear()
    for row in rows:
        number = record[0][0]
        record.clear()
        try:
            # every line ends in a line end, which ends a row outside quotes: a row that took the reader
            # past the last line opened a quote and never closed it (a lone quote inside an unquoted
            # field is CSV: 5" tall)
            if ended:
                raise BadLine(number, "a quoted field opened on this line is never closed")
            if len(row) <= max(a, b):
                raise BadLine(number, f"expected at least {max(a, b) + 1} comma-separated fields")
            label = _number(row[score], number) if score is not None and score < len(row) else None
            yield number, row[a], row[b], label
        except BadLine as e:
            problems.bad(*e.args)
