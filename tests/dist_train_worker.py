"""One rank of a `transenc` command under torchrun, with the tests' tiny recipe (tests/test_train.py).
With TRANSENC_TEST_DIE_AT_STEP=N, rank 1 dies (os._exit) at its N-th cross-encoder step. With
TRANSENC_TEST_ROWS_TO=DIR, each rank keeps DIR/rows-RANK.json up to date with the rows its own
forwards computed (written at each forward: the command may leave by os._exit)."""
import itertools
import json
import os
import sys
from pathlib import Path

from test_train import TINY
from transenc import cli, fit, training
from transenc.models import BiEncoder, CrossEncoder


def die_at_cross_step(n: int) -> None:
    real, calls = fit.cross_step_loss, itertools.count(1)

    def dying(*args, **kwargs):
        if next(calls) == n:
            os._exit(9)
        return real(*args, **kwargs)

    fit.cross_step_loss = dying


def count_rows(to: Path) -> None:
    seen = {"bi": 0, "cross": 0}
    for kind, cls, method in (("bi", BiEncoder, "embed"), ("cross", CrossEncoder, "logits")):
        def forward(self, batch, kind=kind, real=getattr(cls, method)):
            seen[kind] += len(batch.rows)
            (to / f"rows-{os.environ['RANK']}.json").write_text(json.dumps(seen))
            return real(self, batch)

        setattr(cls, method, forward)


if __name__ == "__main__":
    training.RECIPES["tiny"] = TINY
    if os.environ.get("TRANSENC_TEST_DIE_AT_STEP") and os.environ.get("RANK") == "1":
        die_at_cross_step(int(os.environ["TRANSENC_TEST_DIE_AT_STEP"]))
    if os.environ.get("TRANSENC_TEST_ROWS_TO"):
        count_rows(Path(os.environ["TRANSENC_TEST_ROWS_TO"]))
    cli.run(sys.argv[1:])
