"""Streaming readers for pair files: TSV, CSV, JSONL, `s1||s2` lines and the STS-B csv layout.

Every problem is reported as an InputError naming file and line. With on_error="skip" bad
lines are counted and skipped instead.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Iterator

from transenc.errors import InputError, TransencError
from transenc.pairset import PairSet, PairSetBuilder

FORMATS = ("tsv", "csv", "jsonl", "bars", "sts")
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


def detect_format(path: Path, first_line: str) -> str:
    fmt = _BY_SUFFIX.get(path.suffix.lower(), "tsv")
    if fmt == "csv" and first_line.count("\t") >= 6:
        return "sts"  # STS-B ships tab-separated fields under a .csv name
    if fmt == "tsv" and "\t" not in first_line and "||" in first_line:
        return "bars"
    return fmt


class PairReader:
    """The validated (sentence1, sentence2, label or None) records of a pairs file, streamed.

    Iterating reads the file again from the start, so a consumer may make several passes;
    `skipped` counts the bad lines skipped by the last pass (on_error="skip").
    """

    def __init__(self, path: str | Path, fmt: str | None = None, on_error: str = "raise"):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, 0, "is a folder, not a pairs file" if self.path.is_dir() else "no such file")
        if fmt is not None and fmt not in FORMATS:
            raise InputError(self.path, 0, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
        self.fmt, self.on_error, self.skipped = fmt, on_error, 0
        Problems(self.path, on_error)  # checks on_error now, not at the first pass

    def __iter__(self) -> Iterator[tuple[str, str, float | None]]:
        path, problems = self.path, Problems(self.path, self.on_error)
        lines = text_lines(path, problems)
        first = next(lines, None)
        if first is None:
            raise InputError(path, 0, "file is empty" if not problems.skipped else "no readable lines")
        fmt = self.fmt or detect_format(path, first[1])
        lines = itertools.chain([first], lines)
        records = _csv_records(lines, problems) if fmt == "csv" else _line_records(_PARSERS[fmt], lines, problems)
        good = 0
        for number, a, b, label in records:
            if not a.strip() or not b.strip():
                problems.bad(number, "empty sentence")
            elif "\x00" in a or "\x00" in b:  # a binary file or a broken export, never text
                problems.bad(number, "NUL byte in a sentence")
            elif label is not None and not math.isfinite(label):
                problems.bad(number, f"score is not a finite number ({label})")
            else:
                good += 1
                self.skipped = problems.skipped
                yield a, b, label
        self.skipped = problems.skipped
        if good == 0:
            raise InputError(path, 0, "no valid sentence pairs" if problems.skipped else "file holds no sentence pairs")


def read_pairs(path: str | Path, fmt: str | None = None, on_error: str = "raise") -> tuple[PairSet, int]:
    """Read a whole pairs file into a PairSet. Returns (pairs, number of skipped bad lines)."""
    reader = PairReader(path, fmt, on_error)
    builder = PairSetBuilder()
    for a, b, label in reader:
        builder.add(a, b, label)
    return builder.build(), reader.skipped


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
        raise BadLine(number, f"score '{text[:40]}' is not a number") from None


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
            label = record.get("label", record.get("score"))
            if label is not None and (isinstance(label, bool) or not isinstance(label, (int, float))):
                raise BadLine(number, "'label' must be a number")
            return number, a, b, None if label is None else float(label)
    raise BadLine(number, "expected keys sentence1/sentence2 or text_a/text_b")


_PARSERS = {"tsv": _parse_tsv, "bars": _parse_bars, "jsonl": _parse_jsonl, "sts": _parse_sts}


def _csv_records(lines, problems: Problems):
    """CSV with a header: the sentence1/sentence2 columns if named, else the first two."""
    where = {"line": 0}

    def texts():
        for number, text in lines:
            where["line"] = number
            yield text + "\n"

    rows = csv.reader(texts())
    names = [n.strip().lower() for n in next(rows)]
    a = names.index("sentence1") if "sentence1" in names else 0
    b = names.index("sentence2") if "sentence2" in names else 1
    score = next((names.index(n) for n in ("score", "label") if n in names), None)
    for row in rows:
        number = where["line"]
        try:
            if len(row) <= max(a, b):
                raise BadLine(number, f"expected at least {max(a, b) + 1} comma-separated fields")
            label = _number(row[score], number) if score is not None and score < len(row) else None
            yield number, row[a], row[b], label
        except BadLine as e:
            problems.bad(*e.args)
