"""Errors users can act on. (Minimal stand-in; a colleague's fuller errors.py supersedes it.)"""


class InputError(Exception):
    """A problem in an input file: which file, which line (1-based), and why."""

    def __init__(self, path, line, reason):
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = path, line, reason
