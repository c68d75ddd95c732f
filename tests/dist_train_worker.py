"""One rank of `transenc train` under torchrun with the tests' tiny recipe (tests/test_train.py)."""
import sys

from test_train import TINY
from transenc import cli, train

if __name__ == "__main__":
    train.RECIPES["tiny"] = TINY
    sys.exit(cli.main(sys.argv[1:]))
