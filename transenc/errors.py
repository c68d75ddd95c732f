"""Errors that the CLI turns into one clear line and exit code 2."""
from __future__ import annotations

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


def require_count(name: str, value) -> None:
    """A count option: None (its default) or a whole number of at least 1, else a TransencError naming it."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TransencError(f"{name} must be a whole number of at least 1, got {value!r}")
