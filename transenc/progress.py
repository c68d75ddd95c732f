"""Progress bars on a terminal only, so logs and pipes stay clean."""
from __future__ import annotations

import sys

from tqdm import tqdm


def progress(total: int, desc: str, unit: str = "it", enabled: bool | None = None) -> tqdm:
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
