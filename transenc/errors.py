"""Errors that the CLI turns into one clear line and exit code 2."""
from __future__ import annotations

import numbers
from pathlib import Path


class TransencError(Exception):
    """A user-facing failure: bad input, a missing model, a non-finite value."""


class InputError(TransencError):
    """A problem in an input file, named by path and line (line 0: the file as a whole)."""

    def __init__(self, path: str | Path, line: int, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


class ModelError(TransencError):
    """A model that cannot be found, read or downloaded."""


class OutputError(TransencError):
    """A file or folder that cannot be written (a full disk, a read-only filesystem, no permission),
    named by the path the user gave, never by a temporary file; `hint` says what to do next."""

    def __init__(self, path: str | Path, reason: str, hint: str | None = None):
        self.path, self.reason, self.hint = str(path), reason, hint
        super().__init__(f"cannot write {self.path}: {reason}" + (f"; {hint}" if hint else ""))


def is_whole(value) -> bool:
    """An int, numpy's included (what a notebook's arithmetic gives), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _shown(value) -> str:
    """A refused value as the message quotes it: a number as written, anything else as its repr."""
    return str(value) if isinstance(value, numbers.Number) else repr(value)


def count_problem(value, shown: str | None = None) -> str | None:
    """What is wrong with a count option's value (None is its default), or None when nothing is.
    shown: the value as the user typed it (an option's text)."""
    if value is not None and (not is_whole(value) or value < 1):
        return f"must be a whole number of at least 1, got {shown or _shown(value)}"
    if value is not None and value > MAX_COUNT:
        return f"must be at most {MAX_COUNT:,}, got {shown or _shown(value)}"
    return None


# The most of anything counted (pairs, a batch's rows, neighbours, cycles): pair indices are int32, and
# the engine's counts overflow past 2^63 (--chunk-pairs 9223372036854775808 was a TypeError).
MAX_COUNT = 2**31 - 1


def cosine_problem(value, shown: str | None = None) -> str | None:
    """What is wrong with a cosine threshold (None is its default), or None when nothing is: one
    outside [-1, 1], or NaN, would keep every pair or none."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not -1 <= value <= 1):
        return f"must be a cosine, from -1 to 1, got {shown or _shown(value)}"
    return None


def require_count(name: str, value) -> int | None:
    """A count keyword or option as a plain int (None stays None): a TransencError naming it when
    count_problem finds one."""
    problem = count_problem(value)
    if problem:
        raise TransencError(f"{name} {problem}")
    return None if value is None else int(value)
