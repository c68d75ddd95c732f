"""Progress: a bar on a terminal; in logs and pipes, a plain line every half minute instead of
carriage-return noise, so a long stage written to a file still shows it is moving."""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

LOG_EVERY_S = 30.0


class LogLines:
    """The part of tqdm's interface that transenc uses, printing `desc: done/total unit` lines."""

    def __init__(self, total: int, desc: str, unit: str, every: float | None = None, initial: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = LOG_EVERY_S if every is None else every
        self.done, self.initial, self.postfix = initial, initial, ""
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = (self.done - self.initial) / (now - self.started)  # this process's rate, not a resumed one's
            left = f", {clock((self.total - self.done) / rate)} left" if rate > 0 and self.done < self.total else ""
            print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({rate:.2f}/s{left}){self.postfix}",
                  file=sys.stderr, flush=True)

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def clock(seconds: float) -> str:
    """h:mm:ss (mm:ss under an hour), rounded: tqdm's own way of writing the time left."""
    return tqdm.format_interval(round(seconds))


def progress(total: int, desc: str, unit: str = "it", enabled: bool | None = None, initial: int = 0):
    """enabled None: a bar on a terminal, log lines otherwise, and under torchrun on rank 0 alone
    (every rank runs the same stages: N copies of each line tell nothing more); False: silent.
    initial: the count already done (a resumed fit)."""
    if enabled is None and os.environ.get("RANK", "0") != "0":
        enabled = False
    if enabled is None and not sys.stderr.isatty():
        return LogLines(total, desc, unit, initial=initial)
    return tqdm(total=total, desc=desc, unit=unit, disable=enabled is False, file=sys.stderr,
                dynamic_ncols=True, initial=initial)
