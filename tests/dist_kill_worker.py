"""A rank of tests/test_distributed.py's lost-rank check: rank 1 dies (or hangs) right after joining
the group; rank 0 runs `transenc label` and must stop with a clear error."""
import os
import sys
import time

import torch

from transenc import cli, distributed

if __name__ == "__main__":
    how, argv = sys.argv[1], sys.argv[2:]
    distributed.setup(torch.device("cpu"))
    if distributed.rank() == 1:
        if how == "die":
            os._exit(9)
        time.sleep(120)
    cli.run(argv)
