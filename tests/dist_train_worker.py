"""One rank of `transenc train` under torchrun with the tests' tiny recipe (tests/test_train.py).
With TRANSENC_TEST_DIE_AT_STEP=N, rank 1 dies (os._exit) at its N-th cross-encoder step."""
import itertools
import os
import sys

from test_train import TINY
from transenc import cli, fit, training


def die_at_cross_step(n: int) -> None:
    real, calls = fit.cross_step_loss, itertools.count(1)

    def dying(*args, **kwargs):
        if next(calls) == n:
            os._exit(9)
        return real(*args, **kwargs)

    fit.cross_step_loss = dying


if __name__ == "__main__":
    training.RECIPES["tiny"] = TINY
    if os.environ.get("TRANSENC_TEST_DIE_AT_STEP") and os.environ.get("RANK") == "1":
        die_at_cross_step(int(os.environ["TRANSENC_TEST_DIE_AT_STEP"]))
    cli.run(sys.argv[1:])
